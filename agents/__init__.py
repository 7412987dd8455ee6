"""The five research agents: planner, source finder, analyst, fact checker and writer.

Each module holds its prompt's name (the text lives in `prompts/<name>.md`), a documented
pydantic output model whose field descriptions are the JSON schema the model sees, and one
function that renders the prompt and calls `fte.llm.LLMClient.structured`. The agents do no
I/O beyond that call, so activities can wrap them and tests can drive them over mocked HTTP.
"""
