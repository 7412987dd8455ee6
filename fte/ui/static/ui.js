// Live pages without reloading: re-fetch the page's live fragment (rendered and escaped on
// the server) and swap in each [data-live] section by id, leaving alone a section the
// person is using (focus inside, a field typed in, an opened <details>). Stops once the
// fragment says the run has finished.
(function () {
  "use strict";
  const root = document.querySelector("[data-live-url]");
  if (!root) return;
  const url = root.getAttribute("data-live-url");
  const every = Number(root.getAttribute("data-live-every")) || 1000;
  function inUse(section) {
    if (section.contains(document.activeElement)) return true;
    if (section.querySelector("details[open]")) return true;
    return Array.from(section.querySelectorAll("input[type=text], textarea")).some(
      (field) => field.value !== field.defaultValue
    );
  }
  async function tick() {
    if (root.getAttribute("data-finished") === "1") return;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const fresh of doc.querySelectorAll("[data-live]")) {
          const old = document.getElementById(fresh.id);
          if (!old || inUse(old)) continue;
          old.replaceWith(document.importNode(fresh, true));
        }
        const state = doc.querySelector("[data-live-state]");
        if (state) root.setAttribute("data-finished", state.getAttribute("data-finished"));
      }
    } catch (err) {
      // The console restarting or the network blinking: try again on the next tick.
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
})();
