// Text that changes dozens of times a second is unreadable and costs a page layout each time:
// show its latest value at most every `ms` milliseconds.

export function throttle(fn, ms) {
  let timer = null;
  let latest = [];
  return (...args) => {
    latest = args;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn(...latest);
    }, ms);
  };
}
