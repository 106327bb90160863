// The "Generate Report" button, made right (plain JavaScript, no libraries).
//
// A click POSTs the report job with an Idempotency-Key. Further clicks for the same report
// (same inputs, not finished yet) reuse that key, so the server returns the same job: four
// clicks make one job. The page then follows the job over Server-Sent Events (the browser
// reconnects by itself and resumes with Last-Event-ID), falls back to polling if the
// stream is refused, and always ends in a result or a clear message: a failed job, a
// server that cannot be reached, or a job still unfinished after the page's time limit
// (data-timeout on <body>, or ?timeout=SECONDS).
"use strict";

(() => {
  const api = document.body.dataset.api || "";
  const params = new URLSearchParams(location.search);
  const limitSeconds = Number(params.get("timeout")) || Number(document.body.dataset.timeout) || 120;
  const FINAL = ["completed", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);
  let current = null; // the report being generated
  window.reportLog = []; // what the page showed, in order (read by the browser test)

  const newKey = () => (window.crypto && crypto.randomUUID)
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  function log(kind, value) {
    window.reportLog.push({ kind, value, at: Date.now() });
  }

  function fetchTimeout(url, options, ms) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), ms);
    return fetch(url, { ...options, signal: controller.signal })
      .catch((err) => { throw new Error(err.name === "AbortError" ? "the server did not answer in time" : err.message); })
      .finally(() => clearTimeout(timer));
  }

  function showStatus(text, running) {
    $("job").hidden = false;
    $("status").hidden = false;
    $("status").textContent = text;
    $("status").classList.toggle("running", running);
    log("status", text);
  }

  function reset() {
    $("result").hidden = true;
    $("error").hidden = true;
    $("bar").value = 0;
    $("percent").textContent = "0%";
    $("job-id").textContent = "…";
  }

  function stop(report) {
    report.done = true;
    report.timers.forEach(clearTimeout);
    if (report.source) report.source.close();
  }

  function fail(report, title, message) {
    if (report !== current) return;
    stop(report);
    showStatus(title, false);
    $("status").hidden = true; // the error panel says it
    $("job").hidden = report.jobId === null; // nothing was accepted: no job to show
    $("error-title").textContent = title;
    $("error-message").textContent = message;
    $("error").hidden = false;
    log("error", message);
  }

  async function generate() {
    const body = JSON.stringify({
      kwargs: { user_id: Number($("user").value), days: Number($("days").value) },
    });
    if (!current || current.done || current.body !== body) {
      if (current) stop(current);
      current = { key: newKey(), body, jobId: null, state: null, clicks: 0, done: false, timers: [], source: null };
      reset();
    }
    const report = current;
    report.clicks += 1;
    $("clicks").textContent = `${report.clicks} click${report.clicks > 1 ? "s" : ""}, one job`;
    if (report.jobId === null) showStatus("Submitting…", true);
    let response;
    try {
      response = await fetchTimeout(`${api}/v1/tasks/generate_report/jobs`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": report.key },
        body,
      }, 10000);
    } catch (err) {
      if (report.jobId === null) fail(report, "Could not reach the server", `${err.message}. Check the connection and try again.`);
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status !== 202) {
      if (report.jobId === null) fail(report, "The report was not accepted", answer.detail || `HTTP ${response.status}`);
      return;
    }
    log("accepted", answer.id);
    if (report.jobId === null && !report.done) {
      report.jobId = answer.id;
      follow(report);
    }
  }

  function onState(report, state) {
    if (report.done || !state || FINAL.includes(state)) return;
    report.state = state;
    const text = {
      waiting: "Queued — waiting for a worker…",
      active: "Generating your report…",
      delayed: "A step failed; retrying shortly…",
    }[state] || state;
    showStatus(text, true);
  }

  function onProgress(report, value) {
    if (report.done || value === null || value === undefined) return;
    const percent = typeof value === "number" ? value : Number(value.percent);
    if (!Number.isFinite(percent)) return;
    $("bar").value = Math.max(0, Math.min(100, percent));
    $("percent").textContent = `${Math.round(percent)}%`;
    if (value.step) showStatus(`Generating your report… (${value.step})`, true);
    log("progress", percent);
  }

  function follow(report) {
    $("job-id").textContent = report.jobId;
    onState(report, "waiting");
    report.timers.push(setTimeout(() => {
      if (!report.done) {
        fail(report, "This is taking longer than expected",
          `Job ${report.jobId} is still ${report.state || "waiting"} after ${limitSeconds} s. ` +
          "It keeps running on the server: come back later, or try again.");
      }
    }, limitSeconds * 1000));
    if (!window.EventSource) { poll(report, 500); return; }
    const source = new EventSource(`${api}/v1/jobs/${encodeURIComponent(report.jobId)}/events`);
    report.source = source;
    source.addEventListener("snapshot", (e) => {
      const status = JSON.parse(e.data);
      onState(report, status.state);
      onProgress(report, status.progress);
      if (status.done) finish(report);
    });
    source.addEventListener("progress", (e) => onProgress(report, JSON.parse(e.data).data.progress));
    for (const state of ["waiting", "delayed", "active"]) {
      source.addEventListener(state, () => onState(report, state));
    }
    for (const state of FINAL) source.addEventListener(state, () => finish(report));
    source.onerror = () => {
      // CONNECTING: the browser reconnects by itself (Last-Event-ID); CLOSED: the server
      // refused the stream, so follow the job by polling instead
      if (!report.done && source.readyState === EventSource.CLOSED) {
        log("status", "stream refused; polling");
        poll(report, 500);
      }
    };
  }

  async function status(report) {
    const response = await fetchTimeout(`${api}/v1/jobs/${encodeURIComponent(report.jobId)}`, {}, 10000);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }

  async function poll(report, pause) {
    if (report.done) return;
    try {
      const job = await status(report);
      onState(report, job.state);
      onProgress(report, job.progress);
      if (job.done) { show(report, job); return; }
    } catch (err) {
      log("status", `poll failed: ${err.message}`);
    }
    report.timers.push(setTimeout(() => poll(report, Math.min(pause * 2, 5000)), pause));
  }

  async function finish(report) {
    if (report.done) return;
    if (report.source) report.source.close();
    for (let attempt = 0; attempt < 5 && !report.done; attempt += 1) {
      try {
        show(report, await status(report));
        return;
      } catch (err) {
        log("status", `status failed: ${err.message}`);
        await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
      }
    }
    fail(report, "Could not read the result", "The job finished, but the server did not return it. Reload the page to try again.");
  }

  function show(report, job) {
    if (report.done) return;
    if (job.state === "completed") {
      stop(report);
      $("bar").value = 100;
      $("percent").textContent = "100%";
      showStatus("Done.", false);
      const result = job.result || {};
      $("summary").textContent = result.summary || JSON.stringify(result);
      $("score").textContent = result.score ?? "–";
      $("period").textContent = result.days ? `${result.days} days` : "–";
      $("result").hidden = false;
      log("result", result);
    } else if (job.state === "failed") {
      const error = job.error || {};
      fail(report, "The report failed", `${error.message || "no error recorded"} (after ${job.attempt} attempt${job.attempt === 1 ? "" : "s"}). Change the inputs and try again.`);
    } else {
      fail(report, "The report was cancelled", `Job ${job.id} was cancelled before it finished.`);
    }
  }

  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    generate();
  });
})();
