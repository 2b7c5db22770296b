// The Vercel AI SDK (`ai` with `@ai-sdk/anthropic`) against the gateway's Messages API. Run by
// tests/clients/test_anthropic_vercel.py: GATEWAY_BASE_URL (ending in /v1), GATEWAY_API_KEY,
// MARKER in the environment; case names as arguments. Prints one JSON object {case: result}.
import { createAnthropic } from "@ai-sdk/anthropic";
import { generateText, streamText, tool, jsonSchema } from "ai";

const { GATEWAY_BASE_URL: baseURL, GATEWAY_API_KEY: apiKey, MARKER: marker } = process.env;
const anthropic = createAnthropic({ baseURL, apiKey });
const model = anthropic("fake/fake-model");

const cases = {
  async generate_text() {
    const m = `${marker}[generate_text]`;
    const result = await generateText({ model, system: "Be brief.", prompt: `hi ${m}`, maxRetries: 0 });
    return { text: result.text, finishReason: result.finishReason, usage: result.usage };
  },

  async stream_text() {
    const m = `${marker}[stream_text]`;
    const result = streamText({ model, prompt: m, maxRetries: 0 });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    return { parts, finishReason: await result.finishReason };
  },

  async tool_call() {
    const m = `${marker}[tool_call]`;
    const result = await generateText({
      model,
      prompt: `Weather in Lima? ${m}`,
      maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "Get the weather for a city.",
          inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
        }),
      },
    });
    return { finishReason: result.finishReason, toolCalls: result.toolCalls.map((c) => ({ name: c.toolName, input: c.input })) };
  },
};

const results = {};
for (const name of process.argv.slice(2)) results[name] = await cases[name]();
console.log(JSON.stringify(results));
