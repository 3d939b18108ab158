// refseg view: layer toggles, duration bars and the optional auto-reload. No inline script
// anywhere (the Content-Security-Policy forbids it); everything hooks in from here.
"use strict";

function setupLayerToggles() {
  document.querySelectorAll("input.layer-toggle").forEach((box) => {
    const apply = () => {
      document.querySelectorAll(`img.overlay[data-layer="${box.dataset.layer}"]`).forEach((img) => {
        img.classList.toggle("hidden", !box.checked);
      });
    };
    box.addEventListener("change", apply);
    apply();
  });
}

function setupBars() {
  document.querySelectorAll(".bar[data-w]").forEach((bar) => {
    const share = Math.max(0, Math.min(100, parseFloat(bar.dataset.w) || 0));
    bar.style.width = `${(share / 100) * 5}em`;
  });
}

function setupAutoReload() {
  const box = document.getElementById("autoreload");
  if (!box) return;
  const key = "refseg-view-autoreload";
  box.checked = window.localStorage.getItem(key) === "1";
  let timer = null;
  const arm = () => {
    if (timer) window.clearTimeout(timer);
    timer = box.checked ? window.setTimeout(() => window.location.reload(), 5000) : null;
  };
  box.addEventListener("change", () => {
    window.localStorage.setItem(key, box.checked ? "1" : "0");
    arm();
  });
  arm();
}

function setupKeys() {
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const target = { j: "next", k: "prev", u: "back" }[ev.key];
    const link = target && document.getElementById(target);
    if (link) window.location.href = link.href;
  });
}

function reloadWhileSummaryComputes() {
  // The first live summary of a large run takes a moment; show it as soon as it is there.
  if (document.querySelector(".summary-empty")) window.setTimeout(() => window.location.reload(), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  reloadWhileSummaryComputes();
  setupLayerToggles();
  setupBars();
  setupAutoReload();
  setupKeys();
});
