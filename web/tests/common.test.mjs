import assert from "node:assert/strict";
import { test } from "node:test";

import { FOLLOW_SLACK_PX, isScrolledToEnd, noKeyHint } from "../js/common.js";

test("a list follows new lines while shown at its end, and stays put once scrolled up", () => {
  const box = { scrollHeight: 2000, clientHeight: 400, scrollTop: 1600 };
  assert.equal(isScrolledToEnd(box), true);
  assert.equal(isScrolledToEnd({ ...box, scrollTop: 1600 - FOLLOW_SLACK_PX + 1 }), true); // a few pixels short
  assert.equal(isScrolledToEnd({ ...box, scrollTop: 0 }), false); // the reader scrolled up
  assert.equal(isScrolledToEnd({ scrollHeight: 300, clientHeight: 400, scrollTop: 0 }), true); // nothing to scroll yet
});

test("with no key, the hint says where one comes from: the #key= link make run prints", () => {
  const hint = noKeyHint("http://127.0.0.1:8000");
  assert.match(hint, /make run/);
  assert.ok(hint.includes("http://127.0.0.1:8000/#key="));
});
