// The gateway's OpenCode plugin on its own, its hooks driven as opencode-ai 1.18.33 drives them
// (see harness.mjs). Run: node --test tests/plugin/ (tests/unit/test_plugin.py runs it in CI).

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import * as pluginModule from "../../backend/plugin/opencode-openai.js";
import {
  CONTRACT_FILE,
  chatParams,
  defaultParams,
  pluginCopy,
  prompt,
  trigger,
  uniqueId,
  userMessage,
  workspace,
} from "./harness.mjs";

const CONTRACT = JSON.parse(readFileSync(CONTRACT_FILE, "utf8"));
const { OpenCodeOpenAI } = pluginModule;
const KEY = CONTRACT.metadataKey;

const WEATHER = {
  name: "get_weather",
  description: "Current weather for a city.",
  parameters: {
    type: "object",
    properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } },
    required: ["city"],
  },
};
const TIME = {
  name: "get_time",
  description: "",
  parameters: { type: "object", properties: { tz: { type: "string" } } },
};

function toolPart(tool, callID, input, output) {
  const state = {
    status: "completed",
    input,
    output,
    title: tool,
    metadata: {},
    time: { start: 0, end: 0 },
  };
  return { type: "tool", tool, callID, state };
}

const CONVERSATION = {
  system: ["You are terse.", "Answer in French."],
  messages: [
    { role: "user", parts: [{ type: "text", text: "weather in Paris?" }] },
    {
      role: "assistant",
      parts: [
        { type: "text", text: "" },
        toolPart("get_weather", "call_1", { city: "Paris" }, "18 C, sunny"),
        toolPart("get_time", "call_2", { tz: "Europe/Paris" }, "14:05"),
      ],
    },
    { role: "assistant", parts: [{ type: "text", text: "It is sunny." }] },
    {
      role: "user",
      parts: [
        { type: "text", text: "and now?" },
        { type: "file", mime: "image/png", url: "data:image/png;base64,AAAA", filename: "image" },
      ],
    },
  ],
  params: {},
};

async function mainPlugin() {
  return OpenCodeOpenAI({ directory: workspace(CONTRACT.toolsFile) });
}

async function assertFailsEveryCall(hooks, ...fragments) {
  for (let i = 0; i < 2; i++) {
    const sessionID = uniqueId("ses");
    await assert.rejects(chatParams(hooks, sessionID, userMessage(sessionID)), (error) => {
      assert.ok(error instanceof Error);
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), error.message);
      return true;
    });
  }
}

describe("module", () => {
  test("exports only functions: OpenCode calls every export as a plugin factory", () => {
    assert.deepEqual(Object.keys(pluginModule), ["OpenCodeOpenAI"]);
    assert.equal(typeof OpenCodeOpenAI, "function");
  });

  test("the factory gives the hooks OpenCode 1.18.33 calls", async () => {
    const hooks = await mainPlugin();
    assert.deepEqual(Object.keys(hooks).sort(), [
      "chat.message",
      "chat.params",
      "config",
      "event",
      "experimental.chat.messages.transform",
      "experimental.chat.system.transform",
      "tool",
      "tool.definition",
      "tool.execute.before",
    ]);
  });
});

describe("message building (experimental.chat.messages.transform)", () => {
  test("the upstream conversation is exactly the client's, session history dropped", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const earlier = userMessage(sessionID);
    const history = [
      { info: earlier, parts: [{ id: uniqueId("prt"), type: "text", text: "old turn" }] },
    ];
    const { message, messages } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: CONVERSATION,
      history,
    });

    assert.deepEqual(
      messages.map((m) => [m.info.id, m.info.role]),
      [
        [`${message.id}_0000`, "user"],
        [`${message.id}_0001`, "assistant"],
        [`${message.id}_0002`, "assistant"],
        [`${message.id}_0003`, "user"],
      ],
    );
    assert.ok(!JSON.stringify(messages).includes("old turn"));
    // Ids sort in conversation order: OpenCode orders by id.
    const ids = messages.map((m) => m.info.id);
    assert.deepEqual([...ids].sort(), ids);
  });

  test("user messages keep the new user message's fields", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { message, messages } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: CONVERSATION,
    });
    const user = messages[3].info;
    assert.deepEqual(user, { ...message, id: `${message.id}_0003`, role: "user" });
  });

  test("assistant messages carry the fields OpenCode needs; tool calls finish with tool-calls", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { message, messages } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: CONVERSATION,
    });
    const expected = (id, finish) => ({
      ...message,
      id,
      role: "assistant",
      parentID: message.id,
      providerID: "fake",
      modelID: "fake-model",
      mode: "opencode-openai",
      path: { cwd: "/", root: "/" },
      cost: 0,
      tokens: { input: 0, output: 0, reasoning: 0, cache: { read: 0, write: 0 } },
      finish,
    });
    assert.deepEqual(messages[1].info, expected(`${message.id}_0001`, "tool-calls"));
    assert.deepEqual(messages[2].info, expected(`${message.id}_0002`, "stop"));
  });

  test("parts are the client's, with ids and owners; tool parts carry the results", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { messages } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: CONVERSATION,
    });
    messages.forEach((m, i) => {
      const sent = CONVERSATION.messages[i].parts;
      assert.deepEqual(
        m.parts,
        sent.map((p, j) => ({ ...p, sessionID, messageID: m.info.id, id: `${m.info.id}_${j}` })),
      );
    });
    const tools = messages[1].parts.filter((p) => p.type === "tool");
    assert.deepEqual(
      tools.map((p) => [p.callID, p.tool, p.state.status, p.state.input, p.state.output]),
      [
        ["call_1", "get_weather", "completed", { city: "Paris" }, "18 C, sunny"],
        ["call_2", "get_time", "completed", { tz: "Europe/Paris" }, "14:05"],
      ],
    );
  });

  test("the request's own objects are not changed: building again gives the same messages", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const request = structuredClone(CONVERSATION);
    const first = await prompt(hooks, { sessionID, metadataKey: KEY, request });
    assert.deepEqual(request, CONVERSATION);
    const again = await trigger(
      hooks,
      "experimental.chat.messages.transform",
      {},
      {
        messages: [{ info: first.message, parts: [first.part] }],
      },
    );
    assert.deepEqual(again.messages, first.messages);
  });

  test("a prompt without the gateway's metadata is left as OpenCode built it", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { message, part, messages } = await prompt(hooks, { sessionID, metadataKey: KEY });
    assert.deepEqual(messages, [{ info: message, parts: [part] }]);
  });

  test("the metadata must sit under the contract's key", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { messages } = await prompt(hooks, {
      sessionID,
      metadataKey: `${KEY}-other`,
      request: CONVERSATION,
    });
    assert.equal(messages.length, 1);
  });

  test("each session uses its own latest request", async () => {
    const hooks = await mainPlugin();
    const [a, b] = [uniqueId("ses"), uniqueId("ses")];
    const one = (text) => ({
      system: [],
      messages: [{ role: "user", parts: [{ type: "text", text }] }],
    });
    await prompt(hooks, { sessionID: a, metadataKey: KEY, request: one("a first") });
    await prompt(hooks, { sessionID: b, metadataKey: KEY, request: one("b only") });
    const second = await prompt(hooks, {
      sessionID: a,
      metadataKey: KEY,
      request: one("a second"),
    });
    assert.deepEqual(
      second.messages.map((m) => m.parts[0].text),
      ["a second"],
    );
    const other = await trigger(
      hooks,
      "experimental.chat.messages.transform",
      {},
      {
        messages: [{ info: userMessage(b), parts: [] }],
      },
    );
    assert.deepEqual(
      other.messages.map((m) => m.parts[0].text),
      ["b only"],
    );
  });
});

describe("system texts (experimental.chat.system.transform)", () => {
  test("exactly the client's system texts, one element each, in order", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { system } = await prompt(hooks, { sessionID, metadataKey: KEY, request: CONVERSATION });
    assert.deepEqual(system, ["You are terse.", "Answer in French."]);
  });

  test("no system texts: an empty list (OpenCode then sends no system message)", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const request = { ...CONVERSATION, system: [] };
    const { system } = await prompt(hooks, { sessionID, metadataKey: KEY, request });
    assert.deepEqual(system, []);
  });

  test("OpenCode's own prompt never goes upstream, even without a request", async () => {
    const hooks = await mainPlugin();
    const { system } = await prompt(hooks, { sessionID: uniqueId("ses"), metadataKey: KEY });
    assert.deepEqual(system, []);
  });
});

describe("one upstream call per request (chat.params)", () => {
  test("a second call for the same user message is refused", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const { message } = await prompt(hooks, { sessionID, metadataKey: KEY, request: CONVERSATION });
    await chatParams(hooks, sessionID, message);
    await assert.rejects(chatParams(hooks, sessionID, message), /one upstream call per request/);
    await assert.rejects(chatParams(hooks, sessionID, message), /one upstream call per request/);
  });

  test("other user messages, in the same session or another, each get their call", async () => {
    const hooks = await mainPlugin();
    const [a, b] = [uniqueId("ses"), uniqueId("ses")];
    for (const sessionID of [a, a, b]) {
      const { message } = await prompt(hooks, {
        sessionID,
        metadataKey: KEY,
        request: CONVERSATION,
      });
      await chatParams(hooks, sessionID, message);
    }
  });

  test("the count is per process: another workspace instance refuses the same message too", async () => {
    const [one, two] = [await mainPlugin(), await mainPlugin()];
    const sessionID = uniqueId("ses");
    const message = userMessage(sessionID);
    await chatParams(one, sessionID, message);
    await assert.rejects(chatParams(two, sessionID, message), /one upstream call per request/);
  });
});

describe("sampling settings (chat.params)", () => {
  test("the request's settings replace OpenCode's; options are merged into the provider's", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const params = {
      temperature: 0.2,
      topP: 0.9,
      maxOutputTokens: 20,
      options: { seed: 7, stop: ["END"], reasoningEffort: "low" },
    };
    const { message } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: { ...CONVERSATION, params },
    });
    const output = await chatParams(hooks, sessionID, message);
    assert.deepEqual(output, {
      temperature: 0.2,
      topP: 0.9,
      topK: undefined,
      maxOutputTokens: 20,
      options: { providerDefault: true, seed: 7, stop: ["END"], reasoningEffort: "low" },
    });
  });

  test("settings the client left out (absent or null) keep OpenCode's values", async () => {
    const hooks = await mainPlugin();
    const sessionID = uniqueId("ses");
    const params = { temperature: null, topP: 0 };
    const { message } = await prompt(hooks, {
      sessionID,
      metadataKey: KEY,
      request: { ...CONVERSATION, params },
    });
    const output = await chatParams(hooks, sessionID, message);
    assert.deepEqual(output, { ...defaultParams(), topP: 0 });
  });
});

describe("client tools (tool, tool.definition, tool.execute.before)", () => {
  async function toolPlugin() {
    return OpenCodeOpenAI({ directory: workspace(CONTRACT.toolsFile, [WEATHER, TIME]) });
  }

  test("no tools file (the main workspace): no tools", async () => {
    const hooks = await mainPlugin();
    assert.deepEqual(hooks.tool, {});
  });

  test("each tool of the tools file is registered by name, with its description", async () => {
    const hooks = await toolPlugin();
    assert.deepEqual(Object.keys(hooks.tool), ["get_weather", "get_time"]);
    assert.equal(hooks.tool.get_weather.description, WEATHER.description);
    assert.equal(hooks.tool.get_time.description, "");
    assert.deepEqual(hooks.tool.get_weather.args, {});
  });

  test("tool.definition gives the upstream the client's exact description and JSON Schema", async () => {
    const hooks = await toolPlugin();
    const original = {
      description: "",
      parameters: { zod: true },
      jsonSchema: { type: "object", properties: {} },
    };
    const output = await trigger(
      hooks,
      "tool.definition",
      { toolID: "get_weather" },
      structuredClone(original),
    );
    assert.deepEqual(output, {
      ...original,
      description: WEATHER.description,
      jsonSchema: WEATHER.parameters,
    });
    // `parameters` stays OpenCode's own: OpenCode sends jsonSchema only when it changed.
    assert.deepEqual(output.parameters, original.parameters);
  });

  test("tool.definition leaves OpenCode's own tools alone", async () => {
    const hooks = await toolPlugin();
    const original = {
      description: "Run a shell command",
      parameters: {},
      jsonSchema: { type: "object" },
    };
    const output = await trigger(
      hooks,
      "tool.definition",
      { toolID: "bash" },
      structuredClone(original),
    );
    assert.deepEqual(output, original);
  });

  test("no tool ever runs, the client's or OpenCode's; only StructuredOutput records its answer", async () => {
    const hooks = await toolPlugin();
    for (const tool of [
      "get_weather",
      "get_time",
      "bash",
      "write",
      "edit",
      "webfetch",
      "task",
      "invalid",
    ]) {
      const input = { tool, sessionID: uniqueId("ses"), callID: "call_1" };
      await assert.rejects(
        trigger(hooks, "tool.execute.before", input, { args: {} }),
        /tools are run by the API client/,
        tool,
      );
    }
    const input = {
      tool: CONTRACT.structuredOutputTool,
      sessionID: uniqueId("ses"),
      callID: "call_2",
    };
    await trigger(hooks, "tool.execute.before", input, { args: { answer: 1 } });
  });

  test("a registered tool's own execute refuses too", async () => {
    const hooks = await toolPlugin();
    await assert.rejects(
      async () => hooks.tool.get_weather.execute({ city: "Paris" }, {}),
      /run by the API client/,
    );
  });
});

describe("a broken tools file is an error, never 'no tools'", () => {
  const BROKEN = [
    ["bad JSON", '[{"name": "get_weather",', "is not valid JSON"],
    ["not an array", { tools: [WEATHER] }, "expected a JSON array"],
    ["an item that is not an object", [WEATHER, "get_time"], "item 1 is not an object"],
    [
      "a tool without a name",
      [{ ...WEATHER, name: undefined }],
      'item 0: "name" must be a non-empty string',
    ],
    ["an empty name", [{ ...WEATHER, name: "" }], 'item 0: "name" must be a non-empty string'],
    ["a name given twice", [WEATHER, TIME, WEATHER], 'item 2: tool "get_weather" is defined twice'],
    ["OpenCode's own tool name", [{ ...TIME, name: "StructuredOutput" }], "is OpenCode's own"],
    [
      "a description that is not text",
      [{ ...WEATHER, description: 3 }],
      '"description" must be a string',
    ],
    [
      "parameters that are not a schema",
      [{ ...WEATHER, parameters: [] }],
      '"parameters" must be a JSON Schema',
    ],
    [
      "no parameters",
      [{ name: "x", description: "" }],
      'tool "x": "parameters" must be a JSON Schema',
    ],
  ];

  for (const [what, content, problem] of BROKEN) {
    test(`${what}: every model call fails, naming the file and the problem`, async () => {
      const dir = workspace(CONTRACT.toolsFile, content);
      const hooks = await OpenCodeOpenAI({ directory: dir });
      assert.deepEqual(hooks.tool, {});
      await assertFailsEveryCall(hooks, join(dir, CONTRACT.toolsFile), problem);
    });
  }

  test("an unreadable tools file (a directory) fails every call, naming the file", async () => {
    const dir = workspace(CONTRACT.toolsFile);
    mkdirSync(join(dir, CONTRACT.toolsFile));
    const hooks = await OpenCodeOpenAI({ directory: dir });
    const file = join(dir, CONTRACT.toolsFile);
    await assertFailsEveryCall(hooks, `the tools file ${file} cannot be read: `, "EISDIR");
  });

  test("the instance refuses every tool, StructuredOutput included", async () => {
    const hooks = await OpenCodeOpenAI({ directory: workspace(CONTRACT.toolsFile, "{") });
    const input = { tool: CONTRACT.structuredOutputTool, sessionID: uniqueId("ses"), callID: "c" };
    await assert.rejects(
      trigger(hooks, "tool.execute.before", input, { args: {} }),
      /run by the API client/,
    );
  });

  test("the factory itself never throws (OpenCode would load the instance without the guard)", async () => {
    const hooks = await OpenCodeOpenAI({});
    await assertFailsEveryCall(hooks, "opencode-openai: cannot set up in undefined");
  });
});

describe("shared names (contract.json)", () => {
  const OTHER = {
    agent: "other-agent",
    agentReadyDescription: "other plugin: ready",
    metadataKey: "other-key",
    toolsFile: "other.tools.json",
    structuredOutputTool: "OtherOutput",
  };

  test("the plugin takes its names from contract.json next to it", async () => {
    const { OpenCodeOpenAI: factory } = await pluginCopy(OTHER);
    const hooks = await factory({ directory: workspace(OTHER.toolsFile, [WEATHER]) });
    assert.deepEqual(Object.keys(hooks.tool), ["get_weather"]);

    const sessionID = uniqueId("ses");
    const { messages } = await prompt(hooks, {
      sessionID,
      metadataKey: "other-key",
      request: CONVERSATION,
    });
    assert.equal(messages.length, CONVERSATION.messages.length);
    const unchanged = await prompt(hooks, {
      sessionID: uniqueId("ses"),
      metadataKey: KEY,
      request: CONVERSATION,
    });
    assert.equal(unchanged.messages.length, 1);

    const before = (tool) =>
      trigger(hooks, "tool.execute.before", { tool, sessionID, callID: "c" }, { args: {} });
    await before("OtherOutput");
    await assert.rejects(before(CONTRACT.structuredOutputTool), /run by the API client/);
  });

  test("the default tools file name does not apply under another contract", async () => {
    const { OpenCodeOpenAI: factory } = await pluginCopy(OTHER);
    const hooks = await factory({ directory: workspace(CONTRACT.toolsFile, [WEATHER]) });
    assert.deepEqual(hooks.tool, {});
  });

  const BAD_CONTRACTS = [
    ["missing", undefined, "ENOENT"],
    ["not JSON", "{", "JSON"],
    [
      "without a name",
      { ...OTHER, toolsFile: undefined },
      '"toolsFile" must be a non-empty string',
    ],
    [
      "with an empty name",
      { ...OTHER, metadataKey: "" },
      '"metadataKey" must be a non-empty string',
    ],
  ];
  for (const [what, contract, problem] of BAD_CONTRACTS) {
    test(`a contract file ${what}: the plugin still loads, and fails every call`, async () => {
      const { OpenCodeOpenAI: factory } = await pluginCopy(contract);
      const hooks = await factory({ directory: workspace(CONTRACT.toolsFile) });
      await assertFailsEveryCall(hooks, "contract.json", problem);
      const input = {
        tool: CONTRACT.structuredOutputTool,
        sessionID: uniqueId("ses"),
        callID: "c",
      };
      await assert.rejects(
        trigger(hooks, "tool.execute.before", input, { args: {} }),
        /run by the API client/,
      );
    });
  }
});

describe("readiness, for the gateway to check (config)", () => {
  // OpenCode calls `config` once per instance, after every factory, with the instance's merged
  // config; GET /agent then shows what it left there.
  const config = () => ({
    agent: {
      [CONTRACT.agent]: { description: "as the workspace wrote it", prompt: " " },
      build: { description: "OpenCode's own" },
    },
  });

  test("a working plugin marks the gateway's agent ready, and nothing else", async () => {
    const hooks = await OpenCodeOpenAI({ directory: workspace(CONTRACT.toolsFile, [WEATHER]) });
    const cfg = config();
    await hooks.config(cfg);
    assert.deepEqual(cfg, {
      agent: {
        [CONTRACT.agent]: { description: CONTRACT.agentReadyDescription, prompt: " " },
        build: { description: "OpenCode's own" },
      },
    });
  });

  test("a broken plugin puts the reason there instead", async () => {
    const dir = workspace(CONTRACT.toolsFile, "[");
    const hooks = await OpenCodeOpenAI({ directory: dir });
    const cfg = config();
    await hooks.config(cfg);
    const { description } = cfg.agent[CONTRACT.agent];
    assert.ok(
      description.startsWith(`opencode-openai: the tools file ${join(dir, CONTRACT.toolsFile)} `),
      description,
    );
    assert.notEqual(description, CONTRACT.agentReadyDescription);
  });

  test("a config without the gateway's agent is left alone", async () => {
    const hooks = await mainPlugin();
    const cfg = { agent: { build: { description: "OpenCode's own" } } };
    await hooks.config(cfg);
    await hooks.config({});
    assert.deepEqual(cfg, { agent: { build: { description: "OpenCode's own" } } });
  });
});

describe("clean-up (event)", () => {
  test("session.deleted forgets that session's request, and only that one", async () => {
    const hooks = await mainPlugin();
    const [gone, kept] = [uniqueId("ses"), uniqueId("ses")];
    await prompt(hooks, { sessionID: gone, metadataKey: KEY, request: CONVERSATION });
    await prompt(hooks, { sessionID: kept, metadataKey: KEY, request: CONVERSATION });
    const deleted = {
      id: uniqueId("evt"),
      type: "session.deleted",
      properties: { sessionID: gone, info: { id: gone } },
    };
    await hooks.event({ event: deleted });
    await hooks.event({
      event: { id: uniqueId("evt"), type: "session.updated", properties: { info: { id: kept } } },
    });

    const transform = (sessionID) =>
      trigger(
        hooks,
        "experimental.chat.messages.transform",
        {},
        { messages: [{ info: userMessage(sessionID), parts: [] }] },
      );
    assert.equal((await transform(gone)).messages.length, 1);
    assert.equal((await transform(kept)).messages.length, CONVERSATION.messages.length);
    const system = await trigger(
      hooks,
      "experimental.chat.system.transform",
      { sessionID: kept },
      { system: ["x"] },
    );
    assert.deepEqual(system.system, CONVERSATION.system);
  });
});
