// The Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`) against the gateway. Run by
// tests/clients/test_vercel_ai.py: GATEWAY_BASE_URL, GATEWAY_API_KEY, MARKER in the environment;
// case names as arguments. Each case puts `${MARKER}[case]` in its prompt, for the fake
// upstream's script. Prints one JSON object {case: result}.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateObject, generateText, streamText } from "ai";
import { z } from "zod";

const { GATEWAY_BASE_URL: baseURL, GATEWAY_API_KEY: apiKey, MARKER: marker } = process.env;

// What the README's "Works with" table shows.
const gateway = createOpenAICompatible({
  name: "opencode-openai",
  baseURL,
  apiKey,
  includeUsage: true, // stream_options.include_usage, so streamText reports usage
  supportsStructuredOutputs: true, // generateObject sends response_format json_schema
});
// The provider's defaults: generateObject sends response_format json_object.
const plain = createOpenAICompatible({ name: "opencode-openai-plain", baseURL, apiKey });

const MODEL = "fake/fake-model";
const City = z.object({ name: z.string(), population: z.number().int() });

const cases = {
  async generate_text() {
    const result = await generateText({
      model: gateway(MODEL),
      system: "Be brief.",
      prompt: `hello ${marker}[generate_text]`,
      maxRetries: 0,
    });
    return { text: result.text, finishReason: result.finishReason, usage: result.usage };
  },

  async stream_text() {
    const result = streamText({ model: gateway(MODEL), prompt: `${marker}[stream_text]`, maxRetries: 0 });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    return { parts, text: await result.text, finishReason: await result.finishReason, usage: await result.usage };
  },

  async generate_object() {
    const result = await generateObject({
      model: gateway(MODEL),
      schema: City,
      schemaName: "city",
      prompt: `${marker}[generate_object]`,
      maxRetries: 0,
    });
    return { object: result.object, finishReason: result.finishReason };
  },

  async generate_object_json_mode() {
    const result = await generateObject({
      model: plain(MODEL),
      schema: City,
      prompt: `${marker}[generate_object_json_mode]`,
      maxRetries: 0,
    });
    return { object: result.object };
  },
};

const results = {};
for (const name of process.argv.slice(2)) {
  if (!cases[name]) throw new Error(`unknown case ${name}`);
  results[name] = await cases[name]();
}
console.log(JSON.stringify(results));
