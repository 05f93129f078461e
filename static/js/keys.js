// The page's one keyboard handler. The page binds its keys once; a mode that is active for a
// while (explain mode, the help dialog) adds its own keys on top and removes them when it ends,
// so a key always means one thing at a time.

export class Keyboard {
  constructor(target = document) {
    this.layers = [];
    target.addEventListener("keydown", (event) => this.press(event));
  }

  /**
   * Bind `bindings` ({key: action}, keys as KeyboardEvent.key, letters in lower case) above
   * every earlier binding. `exclusive`: while bound, keys it does not name do nothing either
   * (a modal dialog). Returns the function that removes them.
   */
  bind(bindings, { exclusive = false } = {}) {
    const layer = { bindings, exclusive };
    this.layers.push(layer);
    return () => {
      const index = this.layers.indexOf(layer);
      if (index >= 0) this.layers.splice(index, 1);
    };
  }

  press(event) {
    const typing = event.target.closest?.("input, select, textarea, [contenteditable]");
    // Space on a focused button is that button's own click; leave it to the button.
    const pressing = event.key === " " && event.target.closest?.("button");
    if (typing || pressing || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const { bindings, exclusive } = this.layers[i];
      const action = bindings[key];
      if (action) {
        event.preventDefault();
        action();
        return;
      }
      if (exclusive) return;
    }
  }
}
