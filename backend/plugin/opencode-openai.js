// opencode-openai's plugin, loaded by OpenCode for the gateway's own workspace directory.
//
// The gateway sends every chat request as one prompt whose first part carries, in its
// `metadata`, the whole OpenAI conversation (system texts, messages) and sampling settings.
// This plugin makes the single upstream model call carry exactly that: no agent prompt, no
// <env> block, no AGENTS.md, no earlier session history. It also refuses any second model call
// for the same user message, so an upstream tool call can never start an agent loop.
//
// Hooks seen in opencode-ai 1.18.33 (see shared/opencode-notes.md); metadata is not sent upstream.

const KEY = "opencode-openai";
const MAX_TRACKED = 10000;
const requests = new Map(); // sessionID -> the last request sent in that session
const calls = new Map(); // messageID -> upstream calls made for it

function remember(map, key, value) {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED) map.delete(map.keys().next().value);
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
        finish: "stop",
      });
    }
    const base = { sessionID: template.info.sessionID, messageID: id };
    const parts = message.parts.map((part, j) => ({ ...part, ...base, id: `${id}_${j}` }));
    return { info, parts };
  });
}

export const OpenCodeOpenAI = async () => ({
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
});
