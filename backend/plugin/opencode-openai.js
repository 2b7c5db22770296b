// opencode-openai's plugin, loaded by OpenCode for the gateway's own workspace directories.
//
// The gateway sends every chat request as one prompt whose first part carries, in its
// `metadata`, the whole OpenAI conversation (system texts, messages) and sampling settings.
// This plugin makes the single upstream model call carry exactly that: no agent prompt, no
// <env> block, no AGENTS.md, no earlier session history. It also refuses any second model call
// for the same user message, so an upstream tool call can never start an agent loop.
//
// Client tools: in a tool-set workspace (see backend/workspace.py) the gateway writes the
// client's function definitions to the tools file; the plugin registers a tool of that name for
// each and gives the upstream the client's exact description and JSON Schema. Nothing ever runs:
// `tool.execute.before` refuses every tool, OpenCode's own included; the gateway returns the
// calls to the client and stops the turn.
//
// Fail closed: OpenCode (1.18.33) runs an instance WITHOUT a plugin whose module fails to load or
// whose factory throws; it only logs "failed to load plugin". That would drop the one-call guard.
// So nothing here throws while loading: a problem (the contract file, a broken tools file) is
// kept as `broken`, and then every model call of the instance fails in `chat.params` with that
// message, which reaches the API client, and no tool runs.
//
// Only the factory is exported: OpenCode calls every export of a plugin module as a factory.
// Hooks and their arguments as OpenCode 1.18.33 calls them: see tests/plugin/.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Names shared with the gateway (backend/plugin_contract.py reads the same file).
const CONTRACT_FILE = new URL("./contract.json", import.meta.url);
const CONTRACT_KEYS = [
  "agent",
  "agentReadyDescription",
  "metadataKey",
  "toolsFile",
  "structuredOutputTool",
];
const PARAMS = ["temperature", "topP", "maxOutputTokens"];
const MAX_TRACKED = 10000;
const SECOND_CALL = "opencode-openai: one upstream call per request; a second step was refused";

function loadContract() {
  try {
    const contract = JSON.parse(readFileSync(CONTRACT_FILE, "utf8"));
    const bad = CONTRACT_KEYS.find((k) => typeof contract?.[k] !== "string" || !contract[k]);
    if (bad) throw new Error(`"${bad}" must be a non-empty string`);
    return { contract };
  } catch (error) {
    const url = CONTRACT_FILE;
    const file = url.protocol === "file:" ? fileURLToPath(url) : url.href;
    return { contract: {}, broken: `opencode-openai: cannot use ${file}: ${error.message}` };
  }
}

const { contract, broken: contractBroken } = loadContract();

// Module state is shared by every workspace instance of one OpenCode process; session and
// message ids are unique across them.
const requests = new Map(); // sessionID -> the last request sent in that session
const calls = new Map(); // messageID -> upstream calls made for it

function remember(map, key, value) {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED) map.delete(map.keys().next().value);
}

function refuse() {
  throw new Error("opencode-openai: tools are run by the API client, never by OpenCode");
}

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);

// What is wrong with the tools file's content, or null. Checked up front: a bad entry would
// otherwise fail later somewhere inside OpenCode, or vanish from the request.
function toolsProblem(tools) {
  if (!Array.isArray(tools)) return "expected a JSON array of {name, description, parameters}";
  const names = new Set();
  for (const [i, tool] of tools.entries()) {
    if (!isObject(tool)) return `item ${i} is not an object`;
    const { name, description, parameters } = tool;
    if (typeof name !== "string" || !name) return `item ${i}: "name" must be a non-empty string`;
    if (name === contract.structuredOutputTool) return `item ${i}: "${name}" is OpenCode's own`;
    if (names.has(name)) return `item ${i}: tool "${name}" is defined twice`;
    if (typeof description !== "string") return `tool "${name}": "description" must be a string`;
    if (!isObject(parameters)) return `tool "${name}": "parameters" must be a JSON Schema object`;
    names.add(name);
  }
  return null;
}

// No tools file is the main workspace: no tools. A tools file that is there but unusable is an
// error, never "no tools": the client would silently get answers made without its tools.
function readTools(directory) {
  const file = join(directory, contract.toolsFile);
  const broken = (problem) => ({ broken: `opencode-openai: the tools file ${file} ${problem}` });
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return { tools: [] };
    return broken(`cannot be read: ${error.message}`);
  }
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (error) {
    return broken(`is not valid JSON: ${error.message}`);
  }
  const problem = toolsProblem(tools);
  return problem ? broken(`is invalid: ${problem}`) : { tools };
}

function setUp(directory) {
  if (contractBroken) return { tools: [], broken: contractBroken };
  try {
    return { tools: [], ...readTools(directory) };
  } catch (error) {
    const broken = `opencode-openai: cannot set up in ${directory}: ${error.message}`;
    return { tools: [], broken };
  }
}

function buildMessages(request, template) {
  return request.messages.map((message, i) => {
    const id = `${template.info.id}_${String(i).padStart(4, "0")}`;
    const info = { ...template.info, id, role: message.role };
    if (message.role === "assistant") {
      Object.assign(info, {
        parentID: template.info.id,
        providerID: template.info.model?.providerID,
        modelID: template.info.model?.modelID,
        mode: template.info.agent,
        path: { cwd: "/", root: "/" },
        cost: 0,
        tokens: { input: 0, output: 0, reasoning: 0, cache: { read: 0, write: 0 } },
        finish: message.parts.some((p) => p.type === "tool") ? "tool-calls" : "stop",
      });
    }
    const base = { sessionID: template.info.sessionID, messageID: id };
    const parts = message.parts.map((part, j) => ({ ...part, ...base, id: `${id}_${j}` }));
    return { info, parts };
  });
}

export const OpenCodeOpenAI = async ({ directory }) => {
  const { tools, broken } = setUp(directory);
  const byName = new Map(tools.map((t) => [t.name, t]));

  return {
    // Which plugins OpenCode loaded is not visible from outside, and a plugin that failed to
    // load is silently left out. So our agent's description, as GET /agent shows it, says that
    // this plugin runs in the instance, or why it is broken: the gateway can check it.
    config: async (config) => {
      const agent = config?.agent?.[contract.agent];
      if (agent) agent.description = broken ?? contract.agentReadyDescription;
    },

    tool: Object.fromEntries(
      tools.map((t) => [t.name, { description: t.description, args: {}, execute: refuse }]),
    ),

    "tool.definition": async (input, output) => {
      const t = byName.get(input.toolID);
      if (!t) return;
      output.description = t.description;
      output.jsonSchema = t.parameters;
    },

    "tool.execute.before": async (input) => {
      if (broken || input.tool !== contract.structuredOutputTool) refuse();
    },

    "chat.message": async (input, output) => {
      const key = contract.metadataKey;
      const request = output.parts?.find((p) => p.metadata?.[key])?.metadata[key];
      if (request) remember(requests, input.sessionID, request);
    },

    "experimental.chat.system.transform": async (input, output) => {
      const request = requests.get(input.sessionID);
      output.system.splice(0, output.system.length, ...(request?.system ?? []));
    },

    "experimental.chat.messages.transform": async (_input, output) => {
      const last = output.messages[output.messages.length - 1];
      const request = last && requests.get(last.info.sessionID);
      if (!request) return;
      output.messages.splice(0, output.messages.length, ...buildMessages(request, last));
    },

    "chat.params": async (input, output) => {
      if (broken) throw new Error(broken);
      const messageID = input.message?.id ?? "";
      const count = (calls.get(messageID) ?? 0) + 1;
      remember(calls, messageID, count);
      if (count > 1) throw new Error(SECOND_CALL);
      const params = requests.get(input.sessionID)?.params ?? {};
      for (const key of PARAMS) {
        if (params[key] !== undefined && params[key] !== null) output[key] = params[key];
      }
      Object.assign(output.options, params.options ?? {});
    },

    event: async ({ event }) => {
      if (event.type === "session.deleted") requests.delete(event.properties?.info?.id);
    },
  };
};
