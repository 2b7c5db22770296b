// Responses API clients against the gateway: the official `openai` Node SDK and the Vercel AI
// SDK's `@ai-sdk/openai` responses model. Run by tests/clients/test_responses_clients.py:
//   GATEWAY_BASE_URL, GATEWAY_API_KEY, MARKER in the environment; case names as arguments.
// Each case puts `${MARKER}[case]` in its input, for the fake upstream's script.
// Prints one JSON object {case: result}.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, streamText, tool } from "ai";
import OpenAI from "openai";

const { GATEWAY_BASE_URL: baseURL, GATEWAY_API_KEY: apiKey, MARKER: marker } = process.env;
const MODEL = "fake/fake-model";
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const provider = createOpenAI({ baseURL, apiKey });

const cases = {
  async node_create() {
    const m = `${marker}[node_create]`;
    const response = await client.responses.create({
      model: MODEL,
      instructions: "Be brief.",
      input: `hello ${m}`,
    });
    return {
      id: response.id,
      status: response.status,
      output_text: response.output_text,
      usage: response.usage,
    };
  },

  async node_stream() {
    const m = `${marker}[node_stream]`;
    const stream = await client.responses.create({ model: MODEL, input: m, stream: true });
    const types = [];
    const deltas = [];
    let final = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") deltas.push(event.delta);
      if (event.type === "response.completed") final = event.response;
    }
    return { types, deltas, final_text: final?.output?.[0]?.content?.[0]?.text ?? null };
  },

  async node_continue() {
    const m = `${marker}[node_continue]`;
    const first = await client.responses.create({ model: MODEL, input: m });
    const second = await client.responses.create({
      model: MODEL,
      input: "and then?",
      previous_response_id: first.id,
    });
    const retrieved = await client.responses.retrieve(second.id);
    return { first: first.output_text, second: second.output_text, retrieved: retrieved.output_text };
  },

  async vercel_generate() {
    const m = `${marker}[vercel_generate]`;
    const result = await generateText({
      model: provider.responses(MODEL),
      system: "Be brief.",
      prompt: `hello ${m}`,
      maxRetries: 0,
    });
    return { text: result.text, finishReason: result.finishReason, usage: result.usage };
  },

  async vercel_stream() {
    const m = `${marker}[vercel_stream]`;
    const result = streamText({ model: provider.responses(MODEL), prompt: m, maxRetries: 0 });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    return { parts, text: await result.text, finishReason: await result.finishReason };
  },

  async vercel_tool() {
    const m = `${marker}[vercel_tool]`;
    const result = await generateText({
      model: provider.responses(MODEL),
      prompt: m,
      maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "Current weather for a city.",
          inputSchema: jsonSchema({
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
            additionalProperties: false,
          }),
          execute: async ({ city }) => `18 C in ${city}`,
        }),
      },
      stopWhen: ({ steps }) => steps.length >= 2,
    });
    return {
      text: result.text,
      steps: result.steps.map((s) => ({
        finishReason: s.finishReason,
        toolCalls: s.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
      })),
    };
  },
};

const out = {};
for (const name of process.argv.slice(2)) out[name] = await cases[name]();
console.log(JSON.stringify(out));
