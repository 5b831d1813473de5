// blockmon dashboard: filters apply on change, a quick search hides rows, "generate now" posts
// with the operator token. Plain JS, no libraries, nothing fetched from elsewhere.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select").forEach((select) => {
      select.addEventListener("change", () => filters.submit());
    });
  }

  const search = document.getElementById("quick-search");
  const table = document.getElementById("states");
  if (search && table) {
    search.addEventListener("input", () => {
      const needle = search.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach((row) => {
        row.classList.toggle("hidden", needle !== "" && !row.textContent.toLowerCase().includes(needle));
      });
    });
  }

  const generate = document.getElementById("generate");
  if (generate) {
    generate.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = document.getElementById("generate-result");
      const data = new FormData(generate);
      output.textContent = "writing…";
      const response = await fetch(generate.dataset.endpoint, {
        method: "POST",
        headers: { "Authorization": "Bearer " + data.get("token"), "Content-Type": "application/json" },
        body: JSON.stringify({ period: data.get("period") }),
      });
      const body = await response.json().catch(() => ({}));
      output.textContent = response.ok ? "written: " + body.label : "refused: " + (body.error || response.status);
      if (response.ok) window.location.reload();
    });
  }
});
