// The official `@anthropic-ai/sdk` Node SDK against the gateway. Run by
// tests/clients/test_anthropic_node.py: GATEWAY_URL, GATEWAY_API_KEY, MARKER in the environment;
// case names as arguments. Each case puts `${MARKER}[case]` in its messages, for the fake
// upstream's script. Prints one JSON object {case: result}; an error a case expects is reported.
import Anthropic from "@anthropic-ai/sdk";

const { GATEWAY_URL: baseURL, GATEWAY_API_KEY: apiKey, MARKER: marker } = process.env;
const MODEL = "fake/fake-model";
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const WEATHER = {
  name: "get_weather",
  description: "Get the weather for a city.",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

const cases = {
  async create() {
    const m = `${marker}[create]`;
    const message = await client.messages.create({
      model: MODEL,
      max_tokens: 64000,
      system: "Be brief.",
      messages: [{ role: "user", content: `hello ${m}` }],
    });
    return { id: message.id, content: message.content, stop_reason: message.stop_reason, usage: message.usage, model: message.model };
  },

  async stream() {
    const m = `${marker}[stream]`;
    const texts = [];
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user", content: m }],
    });
    stream.on("text", (text) => texts.push(text));
    const final = await stream.finalMessage();
    return { texts, content: final.content, stop_reason: final.stop_reason, usage: final.usage };
  },

  async tools() {
    const m = `${marker}[tools]`;
    const question = { role: "user", content: `Weather in Lima? ${m}` };
    const first = await client.messages.create({ model: MODEL, max_tokens: 100, tools: [WEATHER], messages: [question] });
    const call = first.content.find((block) => block.type === "tool_use");
    const second = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: [WEATHER],
      messages: [
        question,
        { role: "assistant", content: first.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "18 C" }] },
      ],
    });
    return { stop_reason: first.stop_reason, call, answer: second.content[0].text };
  },

  async count_tokens() {
    const m = `${marker}[count_tokens]`;
    const count = await client.messages.countTokens({ model: MODEL, messages: [{ role: "user", content: `hi ${m}` }] });
    return count;
  },

  async unknown_model() {
    try {
      await client.messages.create({ model: "claude-nope", max_tokens: 5, messages: [{ role: "user", content: "x" }] });
    } catch (err) {
      return { class: err.constructor.name, status: err.status, type: err.error?.error?.type ?? null, requestID: err.requestID ?? null };
    }
    return { class: null };
  },

  async models() {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    return { ids };
  },
};

const results = {};
for (const name of process.argv.slice(2)) results[name] = await cases[name]();
console.log(JSON.stringify(results));
