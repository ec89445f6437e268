// URLSearchParams (WHATWG URL §6) and URL.prototype.searchParams, which
// boa_runtime's URL lacks. Evaluated once per engine, before any user code.
(() => {
  const encode = (text) =>
    encodeURIComponent(text)
      .replace(/%20/g, "+")
      .replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const decode = (text) => {
    const spaced = text.replace(/\+/g, " ");
    try {
      return decodeURIComponent(spaced);
    } catch {
      return spaced;
    }
  };
  const parse = (query) => {
    const pairs = [];
    for (const part of query.replace(/^\?/, "").split("&")) {
      if (part === "") continue;
      const at = part.indexOf("=");
      pairs.push(at < 0 ? [decode(part), ""] : [decode(part.slice(0, at)), decode(part.slice(at + 1))]);
    }
    return pairs;
  };
  const lists = new WeakMap();
  const owners = new WeakMap();
  const list = (params) => {
    const pairs = lists.get(params);
    if (!pairs) throw new TypeError("Illegal invocation: not a URLSearchParams");
    return pairs;
  };
  const changed = (params) => {
    const url = owners.get(params);
    if (url) {
      const query = params.toString();
      url.search = query === "" ? "" : "?" + query;
    }
  };
  class URLSearchParams {
    constructor(init = "") {
      let pairs;
      if (init instanceof URLSearchParams) pairs = list(init).map(([k, v]) => [k, v]);
      else if (init !== null && typeof init === "object" && typeof init[Symbol.iterator] === "function") {
        pairs = [];
        for (const pair of init) {
          const items = [...pair];
          if (items.length !== 2) throw new TypeError("Each query pair must be an iterable [name, value] tuple");
          pairs.push([String(items[0]), String(items[1])]);
        }
      } else if (init !== null && typeof init === "object") {
        pairs = Object.keys(init).map((k) => [k, String(init[k])]);
      } else pairs = parse(String(init));
      lists.set(this, pairs);
    }
    get size() { return list(this).length; }
    append(name, value) { list(this).push([String(name), String(value)]); changed(this); }
    delete(name, value) {
      const pairs = list(this);
      const keep = pairs.filter(([k, v]) => !(k === String(name) && (value === undefined || v === String(value))));
      pairs.splice(0, pairs.length, ...keep);
      changed(this);
    }
    get(name) { const found = list(this).find(([k]) => k === String(name)); return found ? found[1] : null; }
    getAll(name) { return list(this).filter(([k]) => k === String(name)).map(([, v]) => v); }
    has(name, value) {
      return list(this).some(([k, v]) => k === String(name) && (value === undefined || v === String(value)));
    }
    set(name, value) {
      const pairs = list(this);
      const first = pairs.findIndex(([k]) => k === String(name));
      if (first < 0) pairs.push([String(name), String(value)]);
      else {
        pairs[first][1] = String(value);
        const rest = pairs.filter(([k], i) => i <= first || k !== String(name));
        pairs.splice(0, pairs.length, ...rest);
      }
      changed(this);
    }
    sort() {
      const pairs = list(this);
      const sorted = pairs.map((p, i) => [p, i]).sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j));
      pairs.splice(0, pairs.length, ...sorted.map(([p]) => p));
      changed(this);
    }
    forEach(callback, thisArg) {
      for (const [k, v] of list(this)) callback.call(thisArg, v, k, this);
    }
    *entries() { for (const [k, v] of list(this)) yield [k, v]; }
    *keys() { for (const [k] of list(this)) yield k; }
    *values() { for (const [, v] of list(this)) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return list(this).map(([k, v]) => encode(k) + "=" + encode(v)).join("&"); }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }
  Object.defineProperty(globalThis, "URLSearchParams", { value: URLSearchParams, writable: true, configurable: true });
  if (typeof URL === "function") {
    const bound = new WeakMap();
    Object.defineProperty(URL.prototype, "searchParams", {
      configurable: true,
      enumerable: true,
      get() {
        let params = bound.get(this);
        if (!params) {
          params = new URLSearchParams(this.search);
          owners.set(params, this);
          bound.set(this, params);
        } else {
          lists.set(params, parse(this.search));
        }
        return params;
      },
    });
  }
})();
