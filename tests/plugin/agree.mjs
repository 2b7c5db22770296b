// What the plugin makes of a workspace and a prompt body the gateway's Python wrote
// (tests/unit/test_plugin.py): node tests/plugin/agree.mjs <workspace dir> <prompt body JSON file>
// Prints one JSON object: the tools registered, what the upstream would get, the tools allowed,
// and the agent's description once the plugin has seen the workspace's opencode.json.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { OpenCodeOpenAI } from "../../backend/plugin/opencode-openai.js";
import { chatParams, prompt, trigger, uniqueId } from "./harness.mjs";

const [directory, bodyFile, structuredOutput] = process.argv.slice(2);
const body = JSON.parse(readFileSync(bodyFile, "utf8"));
const hooks = await OpenCodeOpenAI({ directory });
const config = JSON.parse(readFileSync(join(directory, "opencode.json"), "utf8"));
await hooks.config(config);

const definitions = {};
for (const toolID of Object.keys(hooks.tool)) {
  const output = { description: "", parameters: {}, jsonSchema: {} };
  await trigger(hooks, "tool.definition", { toolID }, output);
  definitions[toolID] = { description: output.description, parameters: output.jsonSchema };
}

// The prompt part as the gateway sends it, under whatever metadata key it used.
const [part] = body.parts;
const [metadataKey] = Object.keys(part.metadata);
const sessionID = uniqueId("ses");
const turn = await prompt(hooks, {
  sessionID,
  metadataKey,
  request: part.metadata[metadataKey],
  text: part.text,
});
const params = await chatParams(hooks, sessionID, turn.message);

async function runs(tool) {
  try {
    await trigger(
      hooks,
      "tool.execute.before",
      { tool, sessionID, callID: "call_1" },
      { args: {} },
    );
    return true;
  } catch {
    return false;
  }
}

console.log(
  JSON.stringify({
    agents: Object.fromEntries(Object.entries(config.agent).map(([k, v]) => [k, v.description])),
    tools: definitions,
    system: turn.system,
    messages: turn.messages.map((m) => ({
      role: m.info.role,
      parts: m.parts.map((p) => p.text ?? p.type),
    })),
    temperature: params.temperature ?? null,
    runs: { [structuredOutput]: await runs(structuredOutput), bash: await runs("bash") },
  }),
);
