// Shiftgate portal: small progressive enhancements. No inline scripts (the CSP forbids them).
"use strict";

// Time left: every element with data-ends-at (an ISO instant) counts down once a second.
function formatLeft(ms) {
  if (ms <= 0) return "ended";
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h} h ${pad(m)} min` : `${m} min ${pad(s)} s`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-ends-at]")) {
    const ends = Date.parse(el.dataset.endsAt);
    if (!Number.isNaN(ends)) el.textContent = formatLeft(ends - now);
  }
}

// Buttons with data-confirm ask first (revoking, ending, disabling).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
});
document.addEventListener("htmx:afterSettle", tick);
