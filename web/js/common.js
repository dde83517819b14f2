// Small DOM helpers shared by the playground and the logs viewer, and the key's storage.
// The key lives in sessionStorage only (this tab); a `#key=…` fragment (as printed by
// `make run`) is moved there and removed from the address bar.

const KEY_STORAGE = "rtproxy.key";

export function loadKey() {
  const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (match) {
    sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders(key) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** el("div", {className, dataset, ...props}, ...children) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined && c !== "") node.append(c);
  return node;
}
