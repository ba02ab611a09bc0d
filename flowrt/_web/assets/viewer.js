// flowrt run viewer: opens a node's details on click or Enter/Space, closes them on Escape, and
// follows a live run over Server-Sent Events, swapping in the server-rendered body on each change.
"use strict";
(function () {
  const body = document.getElementById("run-body");
  const detail = document.getElementById("detail");
  if (!body || !detail) return;
  let selected = null;

  function mark() {
    for (const el of document.querySelectorAll("[data-node]")) {
      el.classList.toggle("selected", el.dataset.node === selected);
    }
  }

  async function show(name) {
    selected = name;
    mark();
    const answer = await fetch(body.dataset.nodes + encodeURIComponent(name));
    detail.innerHTML = await answer.text(); // server-rendered and escaped
    detail.hidden = false;
    detail.dataset.node = name;
  }

  function close() {
    const was = selected;
    selected = null;
    detail.hidden = true;
    mark();
    const back = was && document.querySelector(".row .label[data-node='" + CSS.escape(was) + "']");
    if (back) back.focus();
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest(".close")) return close();
    const el = event.target.closest("#run-body [data-node]");
    if (el) show(el.dataset.node);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !detail.hidden) return close();
    const el = event.target.closest && event.target.closest("svg [data-node]");
    if (el && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      show(el.dataset.node);
    }
  });

  async function refresh() {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.node : null;
    const answer = await fetch(body.dataset.body);
    if (!answer.ok) return;
    body.innerHTML = await answer.text();
    mark();
    if (focused) {
      const again = body.querySelector("[data-node='" + CSS.escape(focused) + "']");
      if (again) again.focus();
    }
    if (selected && !detail.hidden) show(selected);
  }

  if (body.dataset.live) {
    const source = new EventSource(body.dataset.live);
    source.addEventListener("changed", refresh);
    source.addEventListener("ended", () => { source.close(); refresh(); });
  }
})();
