// @chanmux/client: a client for chanmux's multiplexed WebSocket protocol
// (PROTOCOL.md, version 2). One socket, many streams; subscriptions shared
// by reference count; requests matched to replies by ref; reconnection with
// full-jitter exponential backoff, resubscribing before reporting "open".

/** A `WebSocket` constructor: the browser's, Node's global, or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of a WebSocket this client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** Settings, each with its default. */
export interface Options {
  /** The WebSocket constructor (default: the global `WebSocket`). */
  WebSocket?: WebSocketConstructor;
  /** Shortest wait before reconnecting, in ms (500). */
  minReconnectDelay?: number;
  /** Longest wait before reconnecting, in ms (20000). */
  maxReconnectDelay?: number;
  /** Silence after which a `{"ping"}` is sent, in ms (25000; 0: never). */
  pingInterval?: number;
  /** How long a ping waits for its pong before the socket is dropped, in ms (10000). */
  pongTimeout?: number;
  /** How long a request waits for its reply, in ms (10000). */
  requestTimeout?: number;
  /** Frames `send` queues while disconnected (100). */
  maxQueued?: number;
  /**
   * Whether to reconnect after the server closed with `code`. Default: yes
   * for 1001, 1006, 1011, 1012, 1013, 1014 (and a missed pong), no for
   * 1000, 1008 and 4000–4999 (and anything else).
   */
  shouldReconnect?: (code: number) => boolean;
  /** A number in [0, 1), for the backoff's jitter (default `Math.random`). */
  random?: () => number;
}

/** The connection's state. */
export type State = "connecting" | "open" | "reconnecting" | "closed";

/** An error frame from the server, or a failure of this client. */
export class ChanmuxError extends Error {
  /** A protocol code (`unknown_stream`...), an application's, or `timeout` / `disconnected` / `closed`. */
  readonly code: string;
  /** The stream it concerns, if any. */
  readonly stream: string | null;

  constructor(code: string, message: string, stream: string | null = null) {
    super(message);
    this.name = "ChanmuxError";
    this.code = code;
    this.stream = stream;
  }
}

/** One part of a page's use of a stream; several may share one stream. */
export interface StreamHandle {
  /** The stream's name. */
  readonly name: string;
  /** Sends `payload` (queued while disconnected, up to `maxQueued`). */
  send(payload: unknown): void;
  /** Sends `payload` with a fresh ref; resolves with the reply's payload. */
  request(payload: unknown, options?: { timeout?: number }): Promise<unknown>;
  /** Calls `callback` with each payload of the stream; returns a function that removes it. */
  onMessage(callback: (payload: unknown) => void): () => void;
  /** Calls `callback` with each error frame about the stream (other than answers to requests). */
  onError(callback: (error: ChanmuxError) => void): () => void;
  /** Calls `callback` when the server ends the stream (`closed`). */
  onClosed(callback: (code: number, reason: string) => void): () => void;
  /** Leaves the stream; the last handle of a subscription unsubscribes it on the server. */
  unsubscribe(): void;
}

type Callbacks = {
  message: Set<(payload: unknown) => void>;
  error: Set<(error: ChanmuxError) => void>;
  closed: Set<(code: number, reason: string) => void>;
};

/** A stream this client knows: a subscription (in `streams`, shared by handles) or eager (in `eager`). */
interface Stream {
  name: string;
  /** `undefined` for an eager stream (never subscribed). */
  params?: unknown;
  /** The server has answered `subscribed` (once). */
  confirmed: boolean;
  /** Handles still using it. */
  handles: Set<Callbacks>;
  /** `subscribe` calls waiting for the server's first answer. */
  waiters: Array<[() => void, (error: ChanmuxError) => void]>;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: ChanmuxError) => void;
  timer?: ReturnType<typeof setTimeout>;
}

const RECONNECT_CODES = [1001, 1006, 1011, 1012, 1013, 1014];
const OPEN = 1;

/** One multiplexed connection. It connects at once. */
export class Multiplexer {
  /** The connection's state. */
  state: State = "connecting";
  private readonly url: string;
  private readonly options: Required<Omit<Options, "WebSocket" | "shouldReconnect">> &
    Pick<Options, "WebSocket" | "shouldReconnect">;
  private socket?: WebSocketLike;
  /** Subscriptions, in the order they were made. */
  private readonly streams = new Map<string, Stream>();
  /** Handles on eager streams (no subscription to count). */
  private readonly eager = new Map<string, Stream>();
  private readonly pending = new Map<number, Pending>();
  /** Frames sent while disconnected, with the ref of a request's. */
  private queue: Array<{ text: string; ref?: unknown }> = [];
  private nextRef = 0;
  private attempt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private pingTimer?: ReturnType<typeof setTimeout>;
  private readonly stateCallbacks = new Set<(state: State, code?: number) => void>();
  private readonly errorCallbacks = new Set<(error: ChanmuxError) => void>();

  constructor(url: string, options: Options = {}) {
    this.url = url;
    this.options = {
      minReconnectDelay: 500,
      maxReconnectDelay: 20000,
      pingInterval: 25000,
      pongTimeout: 10000,
      requestTimeout: 10000,
      maxQueued: 100,
      random: Math.random,
      ...options,
    };
    this.connect();
  }

  /**
   * Calls `callback` with each new state, and for "reconnecting" and
   * "closed" the close code that caused it (1006 for a failed connection,
   * 4999 for a missed pong); returns a function that removes it.
   */
  onState(callback: (state: State, code?: number) => void): () => void {
    return listen(this.stateCallbacks, callback);
  }

  /** Calls `callback` with error frames that answer no request and reach no handle (naming no stream, or one without handles). */
  onError(callback: (error: ChanmuxError) => void): () => void {
    return listen(this.errorCallbacks, callback);
  }

  /** A handle on an eager stream (one the server runs from connect): no subscribe is sent. */
  stream(name: string): StreamHandle {
    let stream = this.eager.get(name);
    if (!stream) {
      stream = { name, confirmed: true, handles: new Set(), waiters: [] };
      this.eager.set(name, stream);
    }
    return this.handle(stream);
  }

  /**
   * Subscribes to `name` (with `params` for the stream's consumer) and
   * resolves with a handle once the server answers `subscribed`; rejects
   * with the error frame's code otherwise. Subscribing again to a name
   * shares the server's subscription: each call gets its own handle.
   */
  async subscribe(name: string, params?: unknown): Promise<StreamHandle> {
    if (this.state === "closed") throw new ChanmuxError("closed", "the client is closed");
    let stream = this.streams.get(name);
    if (!stream) {
      stream = { name, params, confirmed: false, handles: new Set(), waiters: [] };
      this.streams.set(name, stream);
      // Sent now if the socket is open (even while others are being
      // resubscribed); else with the resubscription once it opens.
      if (this.socket?.readyState === OPEN) void this.resubscribe(stream);
    }
    const handle = this.handle(stream);
    if (!stream.confirmed) {
      const waiting = stream;
      await new Promise<void>((resolve, reject) => waiting.waiters.push([resolve, reject])).catch((error) => {
        handle.unsubscribe();
        throw error;
      });
    }
    return handle;
  }

  /** Subscribes `stream` on the server; settles its waiting `subscribe` calls. */
  private resubscribe(stream: Stream): Promise<void> {
    const ref = ++this.nextRef;
    return new Promise((done) => {
      const settle = (error?: ChanmuxError) => {
        if (error) this.ended(stream, error);
        else stream.confirmed = true;
        for (const [resolve, reject] of stream.waiters.splice(0)) error ? reject(error) : resolve();
        done();
      };
      this.pending.set(ref, {
        resolve: () => settle(),
        // A disconnect is not an answer: it is tried again on reconnecting.
        reject: (error) => (error.code === "disconnected" ? done() : settle(error)),
        timer: setTimeout(() => {
          // The server may still subscribe: make sure it does not stay so.
          this.unsubscribeOnServer(stream.name);
          this.settle(ref)?.reject(new ChanmuxError("timeout", "no answer to subscribe", stream.name));
        }, this.options.requestTimeout),
      });
      this.write({ subscribe: stream.name, params: stream.params, ref });
    });
  }

  /** Closes the connection for good: no reconnection; pending requests reject. */
  close(): void {
    this.shutdown();
  }

  /** Closes for good; `code` is the close that ended it, if the server's. */
  private shutdown(code?: number): void {
    this.setState("closed", code);
    clearTimeout(this.timer);
    this.stopPinging();
    this.failPending("closed", "the connection is closed");
    this.queue = [];
    const closed = new ChanmuxError("closed", "the connection is closed");
    for (const stream of this.streams.values()) for (const [, reject] of stream.waiters.splice(0)) reject(closed);
    this.socket?.close(1000);
  }

  private handle(stream: Stream): StreamHandle {
    const callbacks: Callbacks = { message: new Set(), error: new Set(), closed: new Set() };
    stream.handles.add(callbacks);
    let left = false;
    return {
      name: stream.name,
      send: (payload) => this.sendFrame({ stream: stream.name, payload }),
      request: (payload, options) =>
        this.call({ stream: stream.name, payload }, options?.timeout),
      onMessage: (callback) => listen(callbacks.message, callback),
      onError: (callback) => listen(callbacks.error, callback),
      onClosed: (callback) => listen(callbacks.closed, callback),
      unsubscribe: () => {
        if (left) return;
        left = true;
        stream.handles.delete(callbacks);
        if (stream.handles.size > 0) return;
        if (this.eager.get(stream.name) === stream) {
          this.eager.delete(stream.name);
        } else if (this.streams.get(stream.name) === stream) {
          this.streams.delete(stream.name);
          this.unsubscribeOnServer(stream.name);
        }
      },
    };
  }

  /**
   * Sends `{"unsubscribe"}` with a ref whose answer is swallowed (so it
   * reaches no later subscription of the name). Not queued: once
   * disconnected, the server has dropped the subscription anyway.
   */
  private unsubscribeOnServer(name: string): void {
    if (this.socket?.readyState !== OPEN) return;
    const ref = ++this.nextRef;
    this.pending.set(ref, { resolve: () => {}, reject: () => {} });
    this.write({ unsubscribe: name, ref });
  }

  /** Sends `frame` with a fresh ref; settles with the answer carrying it. */
  private call(frame: Record<string, unknown>, timeout = this.options.requestTimeout): Promise<unknown> {
    const ref = ++this.nextRef;
    if (this.state === "closed") return Promise.reject(new ChanmuxError("closed", "the connection is closed"));
    return new Promise((resolve, reject) => {
      const pending: Pending = { resolve, reject };
      if (timeout > 0) {
        pending.timer = setTimeout(
          () => this.settle(ref)?.reject(new ChanmuxError("timeout", `no answer within ${timeout} ms`)),
          timeout,
        );
      }
      this.pending.set(ref, pending);
      try {
        this.sendFrame({ ...frame, ref });
      } catch (error) {
        this.settle(ref)?.reject(error as ChanmuxError);
      }
    });
  }

  /** Sends now when open, else queues. */
  private sendFrame(frame: Record<string, unknown>): void {
    if (this.state === "closed") throw new ChanmuxError("closed", "the connection is closed");
    if (this.state === "open") return this.write(frame);
    if (this.queue.length >= this.options.maxQueued) {
      throw new ChanmuxError("queue_full", `more than ${this.options.maxQueued} frames queued while disconnected`);
    }
    this.queue.push({ text: JSON.stringify(frame), ref: frame.ref });
  }

  private write(frame: Record<string, unknown> | string): void {
    const text = typeof frame === "string" ? frame : JSON.stringify(frame);
    if (this.socket?.readyState === OPEN) this.socket.send(text);
  }

  private connect(): void {
    const Constructor = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Constructor) throw new Error("no WebSocket constructor: pass one in options.WebSocket");
    const socket = new Constructor(this.url);
    this.socket = socket;
    socket.onopen = () => this.opened();
    socket.onmessage = (event) => {
      if (socket === this.socket) this.received(String(event.data));
    };
    socket.onclose = (event) => {
      if (socket === this.socket) this.lost(event.code);
    };
    // An error ends the socket (Node 20's WebSocket fires no close at all
    // when the connection fails, and browsers fire this first).
    socket.onerror = () => {
      if (socket === this.socket) this.lost(1006);
    };
  }

  /** The socket opened: resubscribe every live subscription, in order, then report "open". */
  private async opened(): Promise<void> {
    const socket = this.socket;
    this.heard();
    // In the order they were made (a Map keeps insertion order).
    const subscriptions = [...this.streams.values()];
    await Promise.all(subscriptions.map((stream) => this.resubscribe(stream)));
    if (socket !== this.socket || this.state === "closed") return;
    this.attempt = 0;
    // Queued frames first: what a callback of "open" sends comes after them.
    const queued = this.queue;
    this.queue = [];
    for (const { text } of queued) this.write(text);
    this.setState("open");
  }

  /** A subscription the server refused (on resubscribing, say): it is gone. */
  private ended(stream: Stream, error: ChanmuxError): void {
    if (this.streams.get(stream.name) === stream) this.streams.delete(stream.name);
    if (stream.confirmed) for (const handle of stream.handles) for (const cb of handle.error) emit(cb, error);
  }

  private received(text: string): void {
    this.heard();
    let frame: Record<string, any>;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const ref = frame.ref;
    if ("error" in frame) {
      const error = new ChanmuxError(frame.error?.code, frame.error?.message, frame.stream ?? null);
      const pending = typeof ref === "number" ? this.settle(ref) : undefined;
      if (pending) return pending.reject(error);
      const handles = error.stream === null ? [] : this.handlesOf(error.stream);
      for (const handle of handles) for (const cb of handle.error) emit(cb, error);
      if (handles.length === 0) for (const cb of this.errorCallbacks) emit(cb, error);
      return;
    }
    if ("payload" in frame) {
      if (typeof ref === "number") this.settle(ref)?.resolve(frame.payload);
      else for (const handle of this.handlesOf(frame.stream)) for (const cb of handle.message) emit(cb, frame.payload);
      return;
    }
    if ("subscribed" in frame || "unsubscribed" in frame) {
      if (typeof ref === "number") this.settle(ref)?.resolve(undefined);
      return;
    }
    if ("closed" in frame) {
      const stream = this.streams.get(frame.closed);
      // An unconfirmed subscription is a newer one: a `closed` is for an earlier.
      if (stream?.confirmed) {
        this.streams.delete(frame.closed);
        for (const handle of stream.handles) for (const cb of handle.closed) emit(cb, frame.code, frame.reason);
      }
    }
    // `pong` and frames of later versions: heard, nothing more.
  }

  /** Every handle on stream `name`: its subscription's and eager ones. */
  private handlesOf(name: string): Callbacks[] {
    return [...(this.streams.get(name)?.handles ?? []), ...(this.eager.get(name)?.handles ?? [])];
  }

  /** Takes the pending call with `ref`, stopping its timer. */
  private settle(ref: number): Pending | undefined {
    const pending = this.pending.get(ref);
    if (pending) {
      this.pending.delete(ref);
      clearTimeout(pending.timer);
      // A request settled before it went out (timed out, say) is not sent.
      this.queue = this.queue.filter((queued) => queued.ref !== ref);
    }
    return pending;
  }

  /** Something arrived: the next ping is due after another silent interval. */
  private heard(): void {
    this.stopPinging();
    const { pingInterval, pongTimeout } = this.options;
    if (pingInterval <= 0) return;
    this.pingTimer = setTimeout(() => {
      this.write({ ping: Date.now() });
      // A missed pong: the socket is dropped and the client reconnects.
      this.pingTimer = setTimeout(() => this.lost(1006, true), pongTimeout);
    }, pingInterval);
  }

  private stopPinging(): void {
    clearTimeout(this.pingTimer);
  }

  /** The socket closed with `code`, or a pong was missed (`missedPong`, reported as 1006). */
  private lost(code: number, missedPong = false): void {
    this.stopPinging();
    const socket = this.socket;
    this.socket = undefined;
    if (socket && socket.readyState <= OPEN) socket.close();
    this.failPending("disconnected", `the connection closed (${code})`);
    const again = missedPong || (this.options.shouldReconnect?.(code) ?? RECONNECT_CODES.includes(code));
    if (this.state === "closed" || !again) return this.shutdown(code);
    this.setState("reconnecting", code);
    const { minReconnectDelay: min, maxReconnectDelay: max, random } = this.options;
    const cap = Math.min(max, min * 2 ** ++this.attempt);
    this.timer = setTimeout(() => this.connect(), min + random() * Math.max(0, cap - min));
  }

  /** Rejects every pending request and subscribe with `code`. */
  private failPending(code: string, message: string): void {
    for (const ref of [...this.pending.keys()]) this.settle(ref)?.reject(new ChanmuxError(code, message));
  }

  private setState(state: State, code?: number): void {
    if (this.state === state) return;
    this.state = state;
    for (const callback of this.stateCallbacks) emit(callback, state, code);
  }
}

/** Calls an application's callback; what it throws is rethrown on its own, not into the client. */
function emit<A extends unknown[]>(callback: (...args: A) => void, ...args: A): void {
  try {
    callback(...args);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

function listen<T>(set: Set<T>, callback: T): () => void {
  set.add(callback);
  return () => {
    set.delete(callback);
  };
}
