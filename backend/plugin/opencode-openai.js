// opencode-openai's plugin, loaded by OpenCode for the gateway's own workspace directories.
//
// The gateway sends every chat request as one prompt whose first part carries, in its
// `metadata`, the whole OpenAI conversation (system texts, messages) and sampling settings.
// This plugin makes the single upstream model call carry exactly that: no agent prompt, no
// <env> block, no AGENTS.md, no earlier session history. It also refuses any second model call
// for the same user message, so an upstream tool call can never start an agent loop.
//
// Client tools: in a tool-set workspace (see backend/workspace.py) the gateway writes the
// client's function definitions to TOOLS_FILE; the plugin registers a tool of that name for each
// and gives the upstream the client's exact description and JSON Schema. Nothing ever runs:
// `tool.execute.before` refuses every tool, OpenCode's own included; the gateway returns the
// calls to the client and stops the turn.
//
// Hooks seen in opencode-ai 1.18.33 (see shared/opencode-notes.md); metadata is not sent upstream.

import { readFileSync } from "node:fs";
import { join } from "node:path";

const KEY = "opencode-openai";
const TOOLS_FILE = "opencode-openai.tools.json";
// OpenCode's internal tool for `format` (response_format): it only records the JSON answer.
const STRUCTURED_OUTPUT = "StructuredOutput";
const MAX_TRACKED = 10000;

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

function clientTools(directory) {
  try {
    return JSON.parse(readFileSync(join(directory, TOOLS_FILE), "utf8"));
  } catch {
    return [];
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
  const tools = clientTools(directory);
  const byName = new Map(tools.map((t) => [t.name, t]));

  return {
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
      if (input.tool !== STRUCTURED_OUTPUT) refuse();
    },

    "chat.message": async (input, output) => {
      const request = output.parts?.find((p) => p.metadata?.[KEY])?.metadata[KEY];
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
      const messageID = input.message?.id ?? "";
      const count = (calls.get(messageID) ?? 0) + 1;
      remember(calls, messageID, count);
      if (count > 1) {
        throw new Error("opencode-openai: one upstream call per request; a second step was refused");
      }
      const params = requests.get(input.sessionID)?.params ?? {};
      for (const key of ["temperature", "topP", "maxOutputTokens"]) {
        if (params[key] !== undefined && params[key] !== null) output[key] = params[key];
      }
      Object.assign(output.options, params.options ?? {});
    },

    event: async ({ event }) => {
      if (event.type === "session.deleted") requests.delete(event.properties?.info?.id);
    },
  };
};
