// The official `openai` Node SDK against the gateway. Run by tests/clients/test_openai_node.py:
//   GATEWAY_BASE_URL, GATEWAY_API_KEY, MARKER in the environment; case names as arguments.
// Each case puts `${MARKER}[case]` in its messages, for the fake upstream's script.
// Prints one JSON object {case: result}; an error a case expects is reported, not thrown.
import OpenAI from "openai";

const { GATEWAY_BASE_URL: baseURL, GATEWAY_API_KEY: apiKey, MARKER: marker } = process.env;
const MODEL = "fake/fake-model";
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });

function describeError(err) {
  const kinds = ["AuthenticationError", "NotFoundError", "BadRequestError", "RateLimitError", "APIError"];
  return {
    class: err.constructor.name,
    instanceOf: kinds.filter((k) => err instanceof OpenAI[k]),
    status: err.status ?? null,
    code: err.code ?? null,
    param: err.param ?? null,
    type: err.type ?? null,
    retryAfter: err.headers?.get?.("retry-after") ?? null,
    message: err.message,
  };
}

async function expectError(call) {
  try {
    await call();
  } catch (err) {
    return describeError(err);
  }
  return { class: null };
}

const cases = {
  async non_stream() {
    const m = `${marker}[non_stream]`;
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: `hello ${m}` },
      ],
      max_tokens: 50,
    });
    return {
      content: reply.choices[0].message.content,
      finish_reason: reply.choices[0].finish_reason,
      model: reply.model,
      usage: reply.usage,
    };
  },

  async stream() {
    const m = `${marker}[stream]`;
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: m }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    return {
      first_role: chunks[0].choices[0]?.delta?.role ?? null,
      content: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""),
      content_chunks: chunks.filter((c) => c.choices[0]?.delta?.content).length,
      finish_reasons: chunks.filter((c) => c.choices.length).map((c) => c.choices[0].finish_reason),
      last: { choices: chunks.at(-1).choices, usage: chunks.at(-1).usage },
    };
  },

  async response_format() {
    const m = `${marker}[response_format]`;
    const reply = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: m }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "city",
          strict: true,
          schema: {
            type: "object",
            properties: { name: { type: "string" }, population: { type: "integer" } },
            required: ["name", "population"],
            additionalProperties: false,
          },
        },
      },
    });
    return { parsed: JSON.parse(reply.choices[0].message.content) };
  },

  async models() {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    const one = await client.models.retrieve("fake/fake-model");
    return { ids, retrieved: { id: one.id, object: one.object, owned_by: one.owned_by } };
  },

  async auth_error() {
    const m = `${marker}[auth_error]`;
    const bad = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    return expectError(() => bad.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: m }] }));
  },

  async not_found_error() {
    const m = `${marker}[not_found_error]`;
    return expectError(() =>
      client.chat.completions.create({ model: "fake/no-such-model", messages: [{ role: "user", content: m }] }),
    );
  },

  async bad_request_error() {
    const m = `${marker}[bad_request_error]`;
    return expectError(() =>
      client.chat.completions.create({ model: MODEL, n: 2, messages: [{ role: "user", content: m }] }),
    );
  },

  async rate_limit_error() {
    const m = `${marker}[rate_limit_error]`;
    return expectError(() =>
      client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: m }] }),
    );
  },
};

const results = {};
for (const name of process.argv.slice(2)) {
  if (!cases[name]) throw new Error(`unknown case ${name}`);
  results[name] = await cases[name]();
}
console.log(JSON.stringify(results));
