// Live pages without reloading: the server sends the page's live fragment (rendered and
// escaped there) over an event stream each time it changed, and each [data-live] section
// is swapped in by id, leaving alone a section the person is using (focus inside, a field
// typed in, an opened <details>). The stream ends once the run has finished. A browser
// without EventSource re-fetches the fragment instead.
(function () {
  "use strict";
  const root = document.querySelector("[data-live-url]");
  if (!root) return;
  const url = root.getAttribute("data-live-url");
  const stream = root.getAttribute("data-live-stream");
  const every = Number(root.getAttribute("data-live-every")) || 1000;
  function inUse(section) {
    if (section.contains(document.activeElement)) return true;
    if (section.querySelector("details[open]")) return true;
    return Array.from(section.querySelectorAll("input[type=text], textarea")).some(
      (field) => field.value !== field.defaultValue
    );
  }
  function apply(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const fresh of doc.querySelectorAll("[data-live]")) {
      const old = document.getElementById(fresh.id);
      if (!old || inUse(old)) continue;
      old.replaceWith(document.importNode(fresh, true));
    }
    const state = doc.querySelector("[data-live-state]");
    if (state) root.setAttribute("data-finished", state.getAttribute("data-finished"));
  }
  function finished() {
    return root.getAttribute("data-finished") === "1";
  }
  if (finished()) return;
  if (stream && window.EventSource) {
    // EventSource reconnects by itself after a broken connection (the console restarting,
    // the network blinking); "end" means the run is over and there is nothing more to hear.
    const events = new EventSource(stream);
    events.addEventListener("fragment", (event) => apply(event.data));
    events.addEventListener("end", () => events.close());
    return;
  }
  async function tick() {
    if (finished()) return;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) apply(await response.text());
    } catch (err) {
      // The console restarting or the network blinking: try again on the next tick.
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
})();
