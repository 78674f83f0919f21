// @chanmux/client: a client for chanmux's multiplexed WebSocket protocol
// (PROTOCOL.md, version 2). One socket, many streams; subscriptions shared
// by reference count; requests matched to replies by ref; reconnection with
// full-jitter exponential backoff, resubscribing before reporting "open".
/** An error frame from the server, or a failure of this client. */
export class ChanmuxError extends Error {
    constructor(code, message, stream = null) {
        super(message);
        this.name = "ChanmuxError";
        this.code = code;
        this.stream = stream;
    }
}
const RECONNECT_CODES = [1001, 1006, 1011, 1012, 1013, 1014];
const OPEN = 1;
/** One multiplexed connection. It connects at once. */
export class Multiplexer {
    constructor(url, options = {}) {
        /** The connection's state. */
        this.state = "connecting";
        /** Subscriptions, in the order they were made. */
        this.streams = new Map();
        /** Handles on eager streams (no subscription to count). */
        this.eager = new Map();
        this.pending = new Map();
        /** Frames sent while disconnected, with the ref of a request's. */
        this.queue = [];
        this.nextRef = 0;
        this.attempt = 0;
        this.stateCallbacks = new Set();
        this.errorCallbacks = new Set();
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
    onState(callback) {
        return listen(this.stateCallbacks, callback);
    }
    /** Calls `callback` with error frames that answer no request and reach no handle (naming no stream, or one without handles). */
    onError(callback) {
        return listen(this.errorCallbacks, callback);
    }
    /** A handle on an eager stream (one the server runs from connect): no subscribe is sent. */
    stream(name) {
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
    async subscribe(name, params) {
        if (this.state === "closed")
            throw new ChanmuxError("closed", "the client is closed");
        let stream = this.streams.get(name);
        if (!stream) {
            stream = { name, params, confirmed: false, handles: new Set(), waiters: [] };
            this.streams.set(name, stream);
            // Sent now if the socket is open (even while others are being
            // resubscribed); else with the resubscription once it opens.
            if (this.socket?.readyState === OPEN)
                void this.resubscribe(stream);
        }
        const handle = this.handle(stream);
        if (!stream.confirmed) {
            const waiting = stream;
            await new Promise((resolve, reject) => waiting.waiters.push([resolve, reject])).catch((error) => {
                handle.unsubscribe();
                throw error;
            });
        }
        return handle;
    }
    /** Subscribes `stream` on the server; settles its waiting `subscribe` calls. */
    resubscribe(stream) {
        const ref = ++this.nextRef;
        return new Promise((done) => {
            const settle = (error) => {
                if (error)
                    this.ended(stream, error);
                else
                    stream.confirmed = true;
                for (const [resolve, reject] of stream.waiters.splice(0))
                    error ? reject(error) : resolve();
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
    close() {
        this.shutdown();
    }
    /** Closes for good; `code` is the close that ended it, if the server's. */
    shutdown(code) {
        this.setState("closed", code);
        clearTimeout(this.timer);
        this.stopPinging();
        this.failPending("closed", "the connection is closed");
        this.queue = [];
        const closed = new ChanmuxError("closed", "the connection is closed");
        for (const stream of this.streams.values())
            for (const [, reject] of stream.waiters.splice(0))
                reject(closed);
        this.socket?.close(1000);
    }
    handle(stream) {
        const callbacks = { message: new Set(), error: new Set(), closed: new Set() };
        stream.handles.add(callbacks);
        let left = false;
        return {
            name: stream.name,
            send: (payload) => this.sendFrame({ stream: stream.name, payload }),
            request: (payload, options) => this.call({ stream: stream.name, payload }, options?.timeout),
            onMessage: (callback) => listen(callbacks.message, callback),
            onError: (callback) => listen(callbacks.error, callback),
            onClosed: (callback) => listen(callbacks.closed, callback),
            unsubscribe: () => {
                if (left)
                    return;
                left = true;
                stream.handles.delete(callbacks);
                if (stream.handles.size > 0)
                    return;
                if (this.eager.get(stream.name) === stream) {
                    this.eager.delete(stream.name);
                }
                else if (this.streams.get(stream.name) === stream) {
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
    unsubscribeOnServer(name) {
        if (this.socket?.readyState !== OPEN)
            return;
        const ref = ++this.nextRef;
        this.pending.set(ref, { resolve: () => { }, reject: () => { } });
        this.write({ unsubscribe: name, ref });
    }
    /** Sends `frame` with a fresh ref; settles with the answer carrying it. */
    call(frame, timeout = this.options.requestTimeout) {
        const ref = ++this.nextRef;
        if (this.state === "closed")
            return Promise.reject(new ChanmuxError("closed", "the connection is closed"));
        return new Promise((resolve, reject) => {
            const pending = { resolve, reject };
            if (timeout > 0) {
                pending.timer = setTimeout(() => this.settle(ref)?.reject(new ChanmuxError("timeout", `no answer within ${timeout} ms`)), timeout);
            }
            this.pending.set(ref, pending);
            try {
                this.sendFrame({ ...frame, ref });
            }
            catch (error) {
                this.settle(ref)?.reject(error);
            }
        });
    }
    /** Sends now when open, else queues. */
    sendFrame(frame) {
        if (this.state === "closed")
            throw new ChanmuxError("closed", "the connection is closed");
        if (this.state === "open")
            return this.write(frame);
        if (this.queue.length >= this.options.maxQueued) {
            throw new ChanmuxError("queue_full", `more than ${this.options.maxQueued} frames queued while disconnected`);
        }
        this.queue.push({ text: JSON.stringify(frame), ref: frame.ref });
    }
    write(frame) {
        const text = typeof frame === "string" ? frame : JSON.stringify(frame);
        if (this.socket?.readyState === OPEN)
            this.socket.send(text);
    }
    connect() {
        const Constructor = this.options.WebSocket ?? globalThis.WebSocket;
        if (!Constructor)
            throw new Error("no WebSocket constructor: pass one in options.WebSocket");
        const socket = new Constructor(this.url);
        this.socket = socket;
        socket.onopen = () => this.opened();
        socket.onmessage = (event) => {
            if (socket === this.socket)
                this.received(String(event.data));
        };
        socket.onclose = (event) => {
            if (socket === this.socket)
                this.lost(event.code);
        };
        // An error ends the socket (Node 20's WebSocket fires no close at all
        // when the connection fails, and browsers fire this first).
        socket.onerror = () => {
            if (socket === this.socket)
                this.lost(1006);
        };
    }
    /** The socket opened: resubscribe every live subscription, in order, then report "open". */
    async opened() {
        const socket = this.socket;
        this.heard();
        // In the order they were made (a Map keeps insertion order).
        const subscriptions = [...this.streams.values()];
        await Promise.all(subscriptions.map((stream) => this.resubscribe(stream)));
        if (socket !== this.socket || this.state === "closed")
            return;
        this.attempt = 0;
        // Queued frames first: what a callback of "open" sends comes after them.
        const queued = this.queue;
        this.queue = [];
        for (const { text } of queued)
            this.write(text);
        this.setState("open");
    }
    /** A subscription the server refused (on resubscribing, say): it is gone. */
    ended(stream, error) {
        if (this.streams.get(stream.name) === stream)
            this.streams.delete(stream.name);
        if (stream.confirmed)
            for (const handle of stream.handles)
                for (const cb of handle.error)
                    emit(cb, error);
    }
    received(text) {
        this.heard();
        let frame;
        try {
            frame = JSON.parse(text);
        }
        catch {
            return;
        }
        if (!frame || typeof frame !== "object")
            return;
        const ref = frame.ref;
        if ("error" in frame) {
            const error = new ChanmuxError(frame.error?.code, frame.error?.message, frame.stream ?? null);
            const pending = typeof ref === "number" ? this.settle(ref) : undefined;
            if (pending)
                return pending.reject(error);
            const handles = error.stream === null ? [] : this.handlesOf(error.stream);
            for (const handle of handles)
                for (const cb of handle.error)
                    emit(cb, error);
            if (handles.length === 0)
                for (const cb of this.errorCallbacks)
                    emit(cb, error);
            return;
        }
        if ("payload" in frame) {
            if (typeof ref === "number")
                this.settle(ref)?.resolve(frame.payload);
            else
                for (const handle of this.handlesOf(frame.stream))
                    for (const cb of handle.message)
                        emit(cb, frame.payload);
            return;
        }
        if ("subscribed" in frame || "unsubscribed" in frame) {
            if (typeof ref === "number")
                this.settle(ref)?.resolve(undefined);
            return;
        }
        if ("closed" in frame) {
            const stream = this.streams.get(frame.closed);
            // An unconfirmed subscription is a newer one: a `closed` is for an earlier.
            if (stream?.confirmed) {
                this.streams.delete(frame.closed);
                for (const handle of stream.handles)
                    for (const cb of handle.closed)
                        emit(cb, frame.code, frame.reason);
            }
        }
        // `pong` and frames of later versions: heard, nothing more.
    }
    /** Every handle on stream `name`: its subscription's and eager ones. */
    handlesOf(name) {
        return [...(this.streams.get(name)?.handles ?? []), ...(this.eager.get(name)?.handles ?? [])];
    }
    /** Takes the pending call with `ref`, stopping its timer. */
    settle(ref) {
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
    heard() {
        this.stopPinging();
        const { pingInterval, pongTimeout } = this.options;
        if (pingInterval <= 0)
            return;
        this.pingTimer = setTimeout(() => {
            this.write({ ping: Date.now() });
            // A missed pong: the socket is dropped and the client reconnects.
            this.pingTimer = setTimeout(() => this.lost(1006, true), pongTimeout);
        }, pingInterval);
    }
    stopPinging() {
        clearTimeout(this.pingTimer);
    }
    /** The socket closed with `code`, or a pong was missed (`missedPong`, reported as 1006). */
    lost(code, missedPong = false) {
        this.stopPinging();
        const socket = this.socket;
        this.socket = undefined;
        if (socket && socket.readyState <= OPEN)
            socket.close();
        this.failPending("disconnected", `the connection closed (${code})`);
        const again = missedPong || (this.options.shouldReconnect?.(code) ?? RECONNECT_CODES.includes(code));
        if (this.state === "closed" || !again)
            return this.shutdown(code);
        this.setState("reconnecting", code);
        const { minReconnectDelay: min, maxReconnectDelay: max, random } = this.options;
        const cap = Math.min(max, min * 2 ** ++this.attempt);
        this.timer = setTimeout(() => this.connect(), min + random() * Math.max(0, cap - min));
    }
    /** Rejects every pending request and subscribe with `code`. */
    failPending(code, message) {
        for (const ref of [...this.pending.keys()])
            this.settle(ref)?.reject(new ChanmuxError(code, message));
    }
    setState(state, code) {
        if (this.state === state)
            return;
        this.state = state;
        for (const callback of this.stateCallbacks)
            emit(callback, state, code);
    }
}
/** Calls an application's callback; what it throws is rethrown on its own, not into the client. */
function emit(callback, ...args) {
    try {
        callback(...args);
    }
    catch (error) {
        queueMicrotask(() => {
            throw error;
        });
    }
}
function listen(set, callback) {
    set.add(callback);
    return () => {
        set.delete(callback);
    };
}
