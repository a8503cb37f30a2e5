// The gateway's chat page: sessions, history and streamed answers over the gateway's own API.
// Data from the server is only ever put in as text (textContent, text nodes), never as markup.
"use strict";

(() => {
  const STORE_KEY = "ollama-fleet.chat.key";
  const STORE_SESSION = "ollama-fleet.chat.session";
  const STORE_MODEL = "ollama-fleet.chat.model";
  const PAGE_SIZE = 20;

  const $ = (id) => document.getElementById(id);
  const ui = {
    keyScreen: $("key-screen"), keyForm: $("key-form"), keyInput: $("key-input"),
    keyError: $("key-error"), app: $("app"), sidebar: $("sidebar"), newChat: $("new-chat"),
    list: $("session-list"), noSessions: $("no-sessions"), more: $("more-sessions"),
    forgetKey: $("forget-key"), toggle: $("toggle-sessions"), title: $("session-title"),
    renameForm: $("rename-form"), renameInput: $("rename-input"),
    renameCancel: $("rename-cancel"), model: $("model"), rename: $("rename"),
    remove: $("delete"), error: $("error"), messages: $("messages"), empty: $("empty"),
    composer: $("composer"), systemBox: $("system-box"), system: $("system"),
    input: $("input"), send: $("send"), stop: $("stop"),
  };
  const state = { sessions: [], cursor: null, session: null, streaming: null };

  class ApiError extends Error {
    constructor(status, detail, sessionId) {
      super(detail);
      this.status = status;
      this.sessionId = sessionId || null; // the turn's message was stored in this session
    }
  }

  const key = () => sessionStorage.getItem(STORE_KEY);

  async function problem(response) {
    if (response.status === 401) return { detail: "the key was refused", sessionId: null };
    try {
      const body = await response.json();
      const sessionId = body && typeof body.session_id === "string" ? body.session_id : null;
      if (body && typeof body.detail === "string" && body.detail) {
        return { detail: body.detail, sessionId };
      }
      if (body && typeof body.title === "string" && body.title) {
        return { detail: body.title, sessionId };
      }
    } catch (_) {
      // not problem+json: say what the status was
    }
    return { detail: `the gateway answered ${response.status}`, sessionId: null };
  }

  async function api(method, path, body, signal) {
    const headers = { Authorization: `Bearer ${key()}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", signal };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "the gateway cannot be reached");
    }
    if (!response.ok) {
      const found = await problem(response);
      throw new ApiError(response.status, found.detail, found.sessionId);
    }
    return response;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      askForKey(error.message);
    } else {
      showError(error instanceof ApiError ? error.message : String(error));
    }
  }

  // The key

  function askForKey(message) {
    sessionStorage.removeItem(STORE_KEY);
    ui.app.hidden = true;
    ui.keyScreen.hidden = false;
    ui.keyError.textContent = message || "";
    ui.keyError.hidden = !message;
    ui.keyInput.value = "";
    ui.keyInput.focus();
  }

  async function start() {
    ui.keyScreen.hidden = true;
    ui.app.hidden = false;
    showError("");
    try {
      await Promise.all([loadModels(), loadSessions({ more: false })]);
    } catch (error) {
      failed(error);
      return;
    }
    const wanted = sessionStorage.getItem(STORE_SESSION);
    if (wanted) {
      await openSession(wanted);
    } else {
      newChat();
    }
  }

  // Models

  function addModel(name) {
    const known = Array.from(ui.model.options).some((option) => option.value === name);
    if (!known) ui.model.append(new Option(name, name));
  }

  async function loadModels() {
    const body = await (await api("GET", "/v1/models")).json();
    const names = (body.data || []).map((model) => model.id).sort();
    ui.model.replaceChildren();
    names.forEach(addModel);
    const remembered = sessionStorage.getItem(STORE_MODEL);
    if (remembered && names.includes(remembered)) ui.model.value = remembered;
  }

  // The session list

  function when(text) {
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
  }

  function sessionItem(session) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "session";
    button.dataset.id = session.id;
    if (state.session && state.session.id === session.id) button.setAttribute("aria-current", "true");
    const title = document.createElement("span");
    title.className = "session-name";
    title.textContent = session.title || "Untitled";
    const meta = document.createElement("span");
    meta.className = "session-meta";
    const count = session.message_count === 1 ? "1 message" : `${session.message_count} messages`;
    meta.textContent = `${session.model} · ${count} · ${when(session.updated_at)}`;
    button.append(title, meta);
    button.addEventListener("click", () => openSession(session.id));
    const item = document.createElement("li");
    item.append(button);
    return item;
  }

  function renderSessions() {
    ui.list.replaceChildren(...state.sessions.map(sessionItem));
    ui.noSessions.hidden = state.sessions.length > 0;
    ui.more.hidden = !state.cursor;
  }

  async function loadSessions({ more }) {
    let path = `/v1/sessions?limit=${PAGE_SIZE}`;
    if (more && state.cursor) path += `&cursor=${encodeURIComponent(state.cursor)}`;
    const body = await (await api("GET", path)).json();
    const page = body.data || [];
    state.sessions = more ? state.sessions.concat(page) : page;
    state.cursor = body.next_cursor || null;
    const current = state.session && state.sessions.find((item) => item.id === state.session.id);
    if (current) {
      state.session = current;
      ui.title.textContent = current.title || "Untitled";
    }
    renderSessions();
  }

  function refreshSessions() {
    loadSessions({ more: false }).catch(failed);
  }

  // One conversation

  const ROLE_NAMES = { user: "You", assistant: "Assistant", system: "System" };

  function messageView(message) {
    const article = document.createElement("article");
    article.className = `message ${message.role}`;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = ROLE_NAMES[message.role] || message.role;
    const content = document.createElement("div");
    content.className = "content";
    const text = document.createTextNode(message.content || "");
    content.append(text);
    const note = document.createElement("p");
    note.className = "note";
    note.hidden = true;
    article.append(who, content, note);
    const view = {
      article,
      append(more) {
        text.appendData(more);
        ui.messages.scrollTop = ui.messages.scrollHeight;
      },
      finish(complete, why) {
        article.dataset.state = complete ? "complete" : "incomplete";
        note.hidden = complete;
        note.textContent = complete ? "" : `Incomplete answer${why ? `: ${why}` : ""}`;
      },
    };
    if (message.streaming) {
      article.dataset.state = "streaming";
    } else {
      view.finish(message.complete !== false, message.error);
    }
    return view;
  }

  function showMessage(message) {
    ui.empty.hidden = true;
    const view = messageView(message);
    ui.messages.append(view.article);
    ui.messages.scrollTop = ui.messages.scrollHeight;
    return view;
  }

  function clearMessages() {
    ui.messages.replaceChildren(ui.empty);
    ui.empty.hidden = false;
  }

  function showSession(session) {
    state.session = session;
    if (session) {
      sessionStorage.setItem(STORE_SESSION, session.id);
      addModel(session.model);
      ui.model.value = session.model;
    } else {
      sessionStorage.removeItem(STORE_SESSION);
    }
    ui.title.textContent = session ? session.title || "Untitled" : "New chat";
    ui.rename.hidden = !session;
    ui.remove.hidden = !session;
    ui.systemBox.hidden = Boolean(session);
    closeRename();
    renderSessions();
  }

  function newChat() {
    if (state.streaming) return;
    showError("");
    showSession(null);
    clearMessages();
    closeDrawer();
    ui.input.focus();
  }

  async function openSession(id) {
    if (state.streaming) return;
    showError("");
    closeDrawer();
    let body;
    try {
      body = await (await api("GET", `/v1/sessions/${encodeURIComponent(id)}/messages`)).json();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        showSession(null);
        clearMessages();
        refreshSessions();
      }
      failed(error);
      return;
    }
    const listed = state.sessions.find((session) => session.id === id);
    showSession(listed || { id, title: "", model: ui.model.value, message_count: 0 });
    clearMessages();
    (body.data || []).forEach(showMessage);
    ui.input.focus();
  }

  // Sending and streaming

  function setStreaming(controller) {
    state.streaming = controller;
    ui.send.hidden = Boolean(controller);
    ui.stop.hidden = !controller;
    ui.newChat.disabled = Boolean(controller);
    ui.model.disabled = Boolean(controller);
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = done ? "" : blocks.pop();
      for (const block of blocks) {
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) onEvent(JSON.parse(data));
      }
      if (done) return;
    }
  }

  function adopt(sessionId) {
    if (sessionId && (!state.session || state.session.id !== sessionId)) {
      const model = ui.model.value;
      state.session = { id: sessionId, title: "", model, message_count: 0 };
      sessionStorage.setItem(STORE_SESSION, sessionId);
      ui.rename.hidden = false;
      ui.remove.hidden = false;
      ui.systemBox.hidden = true;
    }
  }

  async function send() {
    const text = ui.input.value;
    if (!text.trim() || state.streaming) return;
    const model = ui.model.value;
    if (!model) {
      showError("no model to answer: the gateway lists none");
      return;
    }
    showError("");
    sessionStorage.setItem(STORE_MODEL, model);
    const request = { message: text, model, stream: true };
    if (state.session) {
      request.session_id = state.session.id;
    } else if (ui.system.value.trim()) {
      request.system = ui.system.value;
    }
    const question = showMessage({ role: "user", content: text });
    const answer = showMessage({ role: "assistant", content: "", streaming: true });
    ui.input.value = "";
    const controller = new AbortController();
    setStreaming(controller);
    let response;
    try {
      response = await api("POST", "/v1/chat", request, controller.signal);
    } catch (error) {
      if (error instanceof ApiError && error.sessionId) {
        // the message was stored before the answer failed: keep it, mark the answer failed
        adopt(error.sessionId);
        answer.finish(false, error.message);
        setStreaming(null);
        failed(error);
        refreshSessions();
        return;
      }
      // refused before any answer: nothing was said, so the text goes back into the box
      question.article.remove();
      answer.article.remove();
      if (!ui.messages.querySelector(".message")) ui.empty.hidden = false;
      ui.input.value = text;
      setStreaming(null);
      if (error.name !== "AbortError") failed(error);
      refreshSessions();
      return;
    }
    let finished = false;
    try {
      await readEvents(response, (event) => {
        adopt(event.session_id);
        if (event.type === "token") {
          answer.append(event.content || "");
        } else if (event.type === "done") {
          finished = true;
          answer.finish(true);
        } else if (event.type === "error") {
          finished = true;
          answer.finish(false, event.detail);
          showError(event.detail || "the answer failed");
        }
      });
      if (!finished) answer.finish(false, "the answer was cut off");
    } catch (error) {
      answer.finish(false, error.name === "AbortError" ? "stopped" : "the answer was cut off");
    } finally {
      setStreaming(null);
      refreshSessions();
      ui.input.focus();
    }
  }

  // Rename and delete

  function openRename() {
    if (!state.session) return;
    ui.renameInput.value = state.session.title || "";
    ui.title.hidden = true;
    ui.renameForm.hidden = false;
    ui.renameInput.focus();
    ui.renameInput.select();
  }

  function closeRename() {
    ui.renameForm.hidden = true;
    ui.title.hidden = false;
  }

  async function saveRename() {
    const title = ui.renameInput.value.trim();
    if (!title || !state.session) return;
    try {
      const path = `/v1/sessions/${encodeURIComponent(state.session.id)}`;
      const session = await (await api("PATCH", path, { title })).json();
      state.sessions = state.sessions.map((item) => (item.id === session.id ? session : item));
      showSession(session);
      refreshSessions();
    } catch (error) {
      failed(error);
    }
  }

  async function deleteSession() {
    const session = state.session;
    if (!session || state.streaming) return;
    const name = session.title || "this session";
    if (!window.confirm(`Delete “${name}” and all its messages?`)) return;
    try {
      await api("DELETE", `/v1/sessions/${encodeURIComponent(session.id)}`);
    } catch (error) {
      failed(error);
      return;
    }
    state.sessions = state.sessions.filter((item) => item.id !== session.id);
    newChat();
    refreshSessions();
  }

  // The drawer (narrow screens)

  function closeDrawer() {
    document.body.classList.remove("drawer-open");
    ui.toggle.setAttribute("aria-expanded", "false");
  }

  function toggleDrawer() {
    const open = document.body.classList.toggle("drawer-open");
    ui.toggle.setAttribute("aria-expanded", String(open));
  }

  // Wiring

  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = ui.keyInput.value.trim();
    if (!typed) return;
    sessionStorage.setItem(STORE_KEY, typed);
    ui.keyInput.value = "";
    start();
  });
  ui.forgetKey.addEventListener("click", () => {
    if (state.streaming) state.streaming.abort();
    sessionStorage.removeItem(STORE_SESSION);
    askForKey("");
  });
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  ui.stop.addEventListener("click", () => state.streaming && state.streaming.abort());
  ui.newChat.addEventListener("click", newChat);
  ui.more.addEventListener("click", () => loadSessions({ more: true }).catch(failed));
  ui.model.addEventListener("change", () => sessionStorage.setItem(STORE_MODEL, ui.model.value));
  ui.rename.addEventListener("click", openRename);
  ui.renameCancel.addEventListener("click", closeRename);
  ui.renameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    saveRename();
  });
  ui.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeRename();
  });
  ui.remove.addEventListener("click", deleteSession);
  ui.toggle.addEventListener("click", toggleDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer();
  });

  if (key()) {
    start();
  } else {
    askForKey("");
  }
})();
