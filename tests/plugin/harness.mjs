// Drives the plugin's hooks the way opencode-ai 1.18.33 calls them (read from the bundled JS of
// the pinned binary: `strings node_modules/.bin/opencode | grep 'trigger("chat.params"'` etc.):
//
//   chat.message        ({sessionID, agent, model, messageID, variant}, {message, parts})
//                       SessionPrompt.createUserMessage, before the user message is saved
//   experimental.chat.messages.transform ({}, {messages: [{info, parts}, ...]})
//                       each step of the prompt loop, over the whole session history
//   experimental.chat.system.transform ({sessionID, model}, {system: [one joined string]})
//   chat.params         ({sessionID, agent, model, provider, message: <user message info>},
//                        {temperature, topP, topK, maxOutputTokens, options})
//                       both in LLMRequestPrep.prepare, once per upstream call (retries too)
//   tool.definition     ({toolID}, {description, parameters, jsonSchema}) per tool, per step
//   tool.execute.before ({tool, sessionID, callID}, {args}) before any tool runs
//   event               ({event: {id, type, properties}}) every bus event of the instance
//
// A hook that throws fails what triggered it (Plugin.trigger awaits each hook in turn).

import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const PLUGIN_DIR = fileURLToPath(new URL("../../backend/plugin/", import.meta.url));
export const PLUGIN_FILE = join(PLUGIN_DIR, "opencode-openai.js");
export const CONTRACT_FILE = join(PLUGIN_DIR, "contract.json");

export const MODEL = { providerID: "fake", modelID: "fake-model" };
export const AGENT = "opencode-openai";

let counter = 0;
/** Ids unique to this test process: the plugin's state is per module, shared by all tests. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}_${process.pid}_${String(counter).padStart(6, "0")}`;
}

export function tempDir() {
  return mkdtempSync(join(tmpdir(), "opencode-openai-plugin-"));
}

/** A workspace directory, with a tools file of this content (text as is, else JSON) if given. */
export function workspace(toolsFile, content) {
  const dir = tempDir();
  if (content !== undefined) {
    writeFileSync(
      join(dir, toolsFile),
      typeof content === "string" ? content : JSON.stringify(content),
    );
  }
  return dir;
}

/** The plugin module from a copy in its own directory, next to this contract (object or text). */
export async function pluginCopy(contract) {
  const dir = tempDir();
  copyFileSync(PLUGIN_FILE, join(dir, "opencode-openai.js"));
  if (contract !== undefined) {
    const text = typeof contract === "string" ? contract : JSON.stringify(contract);
    writeFileSync(join(dir, "contract.json"), text);
  }
  return import(pathToFileURL(join(dir, "opencode-openai.js")).href);
}

/** A hook call as Plugin.trigger makes it: a missing hook leaves `output` as it was. */
export async function trigger(hooks, name, input, output) {
  const hook = hooks[name];
  if (hook) await hook(input, output);
  return output;
}

/** The user message OpenCode creates for a prompt (SessionPrompt.createUserMessage). */
export function userMessage(sessionID, extra = {}) {
  return {
    id: uniqueId("msg"),
    role: "user",
    sessionID,
    time: { created: 1700000000000 },
    agent: AGENT,
    model: { ...MODEL, variant: undefined },
    ...extra,
  };
}

/** chat.params' output before any plugin: OpenCode's defaults for the model. */
export function defaultParams() {
  return {
    temperature: undefined,
    topP: undefined,
    topK: undefined,
    maxOutputTokens: 32000,
    options: { providerDefault: true },
  };
}

export function chatParams(hooks, sessionID, message, output = defaultParams()) {
  const input = {
    sessionID,
    agent: AGENT,
    model: { id: MODEL.modelID, ...MODEL },
    provider: {},
    message,
  };
  return trigger(hooks, "chat.params", input, output);
}

/**
 * One prompt as OpenCode runs it, up to the upstream call: chat.message with the prompt parts,
 * the messages transform over the session's history plus the new user message, the system
 * transform, then chat.params. `history` is what the session held before (pooled sessions).
 */
export async function prompt(
  hooks,
  { sessionID, metadataKey, request, history = [], text = "hi" },
) {
  const message = userMessage(sessionID);
  const part = {
    id: uniqueId("prt"),
    messageID: message.id,
    sessionID,
    type: "text",
    text,
    ...(request === undefined ? {} : { metadata: { [metadataKey]: request } }),
  };
  await trigger(
    hooks,
    "chat.message",
    { sessionID, agent: AGENT, model: MODEL, messageID: message.id, variant: undefined },
    { message, parts: [part] },
  );
  const messages = await trigger(
    hooks,
    "experimental.chat.messages.transform",
    {},
    {
      messages: [...history, { info: message, parts: [part] }],
    },
  );
  const system = await trigger(
    hooks,
    "experimental.chat.system.transform",
    { sessionID, model: { id: MODEL.modelID, ...MODEL } },
    { system: [" \nYou are powered by the model named fake-model.\n<env>\n</env>"] },
  );
  return { message, part, messages: messages.messages, system: system.system };
}
