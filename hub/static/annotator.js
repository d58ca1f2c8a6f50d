/* ymir hub: the built-in annotator (plain JS + canvas, no build step): the editor (boxes, undo, keys, panel).
 *
 * One image at a time, leased from the task (POST .../next) so two labelers never get the same image.
 * Boxes are kept in image pixels; the view is a scale + offset (wheel zoom, space/middle drag pan).
 * Every change is saved (PUT .../images/<sha1>, debounced), at once on next/previous, and with a
 * keepalive request when the tab is hidden or closed, so no label is lost.
 * Pre-annotations (boxes with source "prediction" on an image not yet done) are drawn dashed until
 * accepted (they keep source "prediction") or rejected (removed); moving or resizing one makes it
 * "human". An image is saved as done once no pre-annotation is undecided and it has boxes, or
 * through "no objects".
 */
"use strict";
var ymirAnnotator = (function () {
  var COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
                "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"];
  var HANDLE = 5;          // corner handle half-size, screen px
  var MIN_SIZE = 2;        // smallest box kept, image px
  var SAVE_DELAY = 400;    // debounce of autosave, ms

  function Annotator(root, cfg) {
    var self = this;
    this.root = root;
    this.cfg = cfg;
    this.readonly = cfg.state !== "open" && cfg.state !== "in_progress";
    this.canvas = root.querySelector("#canvas");
    this.ctx = this.canvas.getContext("2d");
    this.stage = root.querySelector("#stage");
    this.csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
    this.info = null;         // the image_state of the shown image
    this.img = null;          // its HTMLImageElement
    this.boxes = [];          // {x1, y1, x2, y2, cls, source, pending}
    this.selected = -1;
    this.defaultClass = 0;
    this.view = { s: 1, ox: 0, oy: 0, fitted: true };
    this.undoStack = [];
    this.redoStack = [];
    this.dirty = false;
    this.markedEmpty = false;
    this.saveTimer = null;
    this.saveDelay = SAVE_DELAY;
    this.saving = Promise.resolve();
    this.drag = null;
    this.spaceDown = false;
    this.lastNudge = null;
    this.trailKey = "ymir-annotator-trail-" + cfg.taskId;
    this.trail = this._loadTrail();
    this.readIndex = 0;       // read-only browsing: position in the task's image list
    this._bind();
    this._buildClasses();
    this._resize();
    var wanted = new URLSearchParams(window.location.search).get("image");
    if (this.readonly) {
      this._showIndex(0);
    } else if (wanted) {
      this.show(wanted);
    } else {
      this.next();
    }
    if (window.ResizeObserver) new ResizeObserver(function () { self._resize(); }).observe(this.stage);
    else window.addEventListener("resize", function () { self._resize(); });
  }

  // -- editing --------------------------------------------------------------------------------------
  Annotator.prototype.snapshot = function () {
    return { boxes: this.boxes.map(function (b) { return Object.assign({}, b); }), selected: this.selected,
             markedEmpty: this.markedEmpty };
  };

  Annotator.prototype.remember = function () {
    this.undoStack.push(this.snapshot());
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
    this.lastNudge = null;
  };

  Annotator.prototype._restore = function (snap) {
    this.boxes = snap.boxes;
    this.selected = Math.min(snap.selected, this.boxes.length - 1);
    this.markedEmpty = snap.markedEmpty;
    this.lastNudge = null;
    this.changed();
  };

  Annotator.prototype.undo = function () {
    if (this.readonly || !this.undoStack.length) return;
    this.redoStack.push(this.snapshot());
    this._restore(this.undoStack.pop());
  };

  Annotator.prototype.redo = function () {
    if (this.readonly || !this.redoStack.length) return;
    this.undoStack.push(this.snapshot());
    this._restore(this.redoStack.pop());
  };

  Annotator.prototype.className = function (index) { return this.cfg.classes[index]; };

  Annotator.prototype.setClass = function (index) {
    if (index < 0 || index >= this.cfg.classes.length) return;
    var b = this.boxes[this.selected];
    if (b && !this.readonly) {
      if (b.cls !== this.cfg.classes[index]) {
        this.remember();
        b.cls = this.cfg.classes[index];
        b.source = "human";
        b.pending = false;
        this.changed();
      }
    } else {
      this.defaultClass = index;
      this._updatePanel();
    }
  };

  Annotator.prototype.addBox = function (box) {
    this.remember();
    this.boxes.push(box);
    this.selected = this.boxes.length - 1;
    this.changed();
  };

  Annotator.prototype.addCentered = function () {
    if (this.readonly || !this.info) return;
    var w = this.info.width, h = this.info.height;
    var c = this.toImage(this.stage.clientWidth / 2, this.stage.clientHeight / 2);
    var bw = Math.max(10, Math.min(w, (this.stage.clientWidth / this.view.s) / 4));
    var bh = Math.max(10, Math.min(h, (this.stage.clientHeight / this.view.s) / 4));
    var x1 = clamp(c.x - bw / 2, 0, w - bw), y1 = clamp(c.y - bh / 2, 0, h - bh);
    this.addBox({ x1: x1, y1: y1, x2: x1 + bw, y2: y1 + bh, cls: this.className(this.defaultClass),
                  source: "human", pending: false });
  };

  Annotator.prototype.deleteSelected = function () {
    if (this.readonly || this.selected < 0) return;
    this.remember();
    this.boxes.splice(this.selected, 1);
    this.selected = Math.min(this.selected, this.boxes.length - 1);
    this.changed();
  };

  Annotator.prototype._nextPending = function (from) {
    for (var k = 0; k < this.boxes.length; k++) {
      var i = (from + k) % this.boxes.length;
      if (this.boxes[i].pending) return i;
    }
    return -1;
  };

  /** Accept (keep, source "prediction") or reject (remove) the selected pre-annotation, or the first one. */
  Annotator.prototype.decide = function (accept) {
    if (this.readonly) return;
    var i = this.selected >= 0 && this.boxes[this.selected] && this.boxes[this.selected].pending
      ? this.selected : this._nextPending(0);
    if (i < 0) return;
    this.remember();
    if (accept) { this.boxes[i].pending = false; this.selected = this._nextPending(i + 1); }
    else {
      this.boxes.splice(i, 1);
      this.selected = this.boxes.length ? this._nextPending(Math.min(i, this.boxes.length - 1)) : -1;
    }
    this.changed();
  };

  Annotator.prototype.decideAll = function (accept) {
    if (this.readonly || !this.pendingCount()) return;
    this.remember();
    if (accept) this.boxes.forEach(function (b) { b.pending = false; });
    else this.boxes = this.boxes.filter(function (b) { return !b.pending; });
    this.selected = -1;
    this.changed();
  };

  /** "No objects": the image is done with no box; then on to the next image. */
  Annotator.prototype.noObjects = function () {
    if (this.readonly || !this.info) return;
    var kept = this.boxes.filter(function (b) { return !b.pending; }).length;
    if (kept && !window.confirm("Remove the " + kept + " box(es) of this image and mark it as holding no object?")) return;
    this.remember();
    this.boxes = [];
    this.selected = -1;
    this.markedEmpty = true;
    this.changed();
    this.markedEmpty = true;
    return this.next();
  };

  Annotator.prototype.nudge = function (dx, dy, resize) {
    var b = this.boxes[this.selected];
    if (this.readonly || !b) return;
    var key = this.selected + (resize ? "r" : "m");
    if (!this.lastNudge || this.lastNudge.key !== key || Date.now() - this.lastNudge.t > 1000) {
      this.remember();
    }
    var w = this.info.width, h = this.info.height;
    if (resize) {
      b.x2 = clamp(b.x2 + dx, b.x1 + MIN_SIZE, w);
      b.y2 = clamp(b.y2 + dy, b.y1 + MIN_SIZE, h);
    } else {
      var mx = clamp(dx, -b.x1, w - b.x2), my = clamp(dy, -b.y1, h - b.y2);
      b.x1 += mx; b.x2 += mx; b.y1 += my; b.y2 += my;
    }
    b.source = "human";
    b.pending = false;
    this.lastNudge = { key: key, t: Date.now() };
    this.changed();
  };

  Annotator.prototype.select = function (i) {
    this.selected = i;
    this._updatePanel();
    this.draw();
  };

  // -- keyboard -------------------------------------------------------------------------------------
  Annotator.prototype._key = function (ev) {
    var t = ev.target, tag = t && t.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable)) return;
    var k = ev.key, ctrl = ev.ctrlKey || ev.metaKey, handled = true;
    var step = ev.altKey ? 10 : 1;
    if (ctrl && (k === "z" || k === "Z")) { if (ev.shiftKey) this.redo(); else this.undo(); }
    else if (ctrl && (k === "y" || k === "Y")) this.redo();
    else if (ctrl || (ev.altKey && k.length === 1)) handled = false;
    else if (k >= "1" && k <= "9") this.setClass(Number(k) - 1);
    else if (k === "0") this.noObjects();
    else if (k === "Delete" || k === "Backspace") this.deleteSelected();
    else if (k === "a" || k === "A") this.decide(true);
    else if (k === "r" || k === "R") this.decide(false);
    else if (k === "n" || k === "N") this.next();
    else if (k === "p" || k === "P") this.prev();
    else if (k === "b" || k === "B") this.addCentered();
    else if (k === "f" || k === "F") this.fit();
    else if (k === "+" || k === "=") this.zoom(1.25);
    else if (k === "-" || k === "_") this.zoom(0.8);
    else if (k === "Escape") this.select(-1);
    else if (k === " " && tag !== "BUTTON" && tag !== "A") { this.spaceDown = true; this.canvas.style.cursor = "grab"; }
    else if (k.indexOf("Arrow") === 0) {
      var dx = k === "ArrowLeft" ? -step : k === "ArrowRight" ? step : 0;
      var dy = k === "ArrowUp" ? -step : k === "ArrowDown" ? step : 0;
      if (this.selected >= 0) this.nudge(dx, dy, ev.shiftKey);
      else if (k === "ArrowRight") this.next();
      else if (k === "ArrowLeft") this.prev();
      else handled = false;
    } else if (k === "Tab" && document.activeElement === this.canvas && this.boxes.length) {
      // cycle through the boxes; past the last (or first) one, Tab leaves the canvas as usual
      var i = this.selected + (ev.shiftKey ? -1 : 1);
      if (this.selected < 0 && ev.shiftKey) i = this.boxes.length - 1;
      if (i < 0 || i >= this.boxes.length) { this.select(-1); handled = false; }
      else this.select(i);
    } else handled = false;
    if (handled) ev.preventDefault();
  };

  // -- the panel beside the canvas ------------------------------------------------------------------
  Annotator.prototype._buildClasses = function () {
    var self = this, picker = this.root.querySelector("#class-picker");
    picker.innerHTML = "";
    this.cfg.classes.forEach(function (name, i) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "ann-class";
      b.dataset.index = i;
      b.dataset["class"] = name;
      b.setAttribute("role", "radio");
      b.title = i < 9 ? "key " + (i + 1) : "";
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = COLORS[i % COLORS.length];
      b.appendChild(sw);
      b.appendChild(document.createTextNode((i < 9 ? (i + 1) + " " : "") + name));
      b.addEventListener("click", function () { self.setClass(i); self.canvas.focus(); });
      picker.appendChild(b);
    });
  };

  Annotator.prototype._updatePanel = function () {
    var self = this, root = this.root;
    var sel = this.boxes[this.selected];
    var active = sel ? this.cfg.classes.indexOf(sel.cls) : this.defaultClass;
    root.querySelectorAll(".ann-class").forEach(function (b) {
      var on = Number(b.dataset.index) === active;
      b.classList.toggle("active", on);
      b.setAttribute("aria-checked", on ? "true" : "false");
    });
    var list = root.querySelector("#box-list");
    list.innerHTML = "";
    this.boxes.forEach(function (b, i) {
      var li = document.createElement("li");
      li.className = "ann-box" + (i === self.selected ? " selected" : "") + (b.pending ? " pending" : "");
      li.dataset.index = i;
      li.dataset["class"] = b.cls;
      li.dataset.source = b.source;
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = self.colorOf(b.cls);
      li.appendChild(sw);
      var text = document.createElement("span");
      var conf = typeof b.confidence === "number" ? " " + b.confidence.toFixed(2) : "";
      text.textContent = b.cls + " · " + (b.pending ? "pre-annotation" + conf + ", undecided" : b.source) + " · " +
        Math.round(b.x1) + "," + Math.round(b.y1) + " – " + Math.round(b.x2) + "," + Math.round(b.y2);
      li.appendChild(text);
      li.addEventListener("click", function () { self.select(i); });
      if (b.pending && !self.readonly) {
        [["accept", true, "✓"], ["reject", false, "✗"]].forEach(function (a) {
          var btn = document.createElement("button");
          btn.type = "button";
          btn.className = "ann-" + a[0] + (a[1] ? "" : " secondary");
          btn.textContent = a[2];
          btn.title = a[0];
          btn.addEventListener("click", function (ev) { ev.stopPropagation(); self.selected = i; self.decide(a[1]); });
          li.appendChild(btn);
        });
      }
      list.appendChild(li);
    });
    var pending = this.pendingCount();
    root.querySelector("#pending-count").textContent = pending ? pending + " undecided (A accepts, R rejects)" :
      "none undecided";
    var name = root.querySelector("#image-name");
    name.textContent = this.info ? (this.info.filename || this.info.sha1.slice(0, 12)) : "–";
    var st = root.querySelector("#image-state");
    st.textContent = this.info ? this.info.state : "–";
    st.className = "badge image-state-" + (this.info ? this.info.state : "none");
    var ro = this.readonly;
    ["#add-box", "#no-objects", "#accept-all", "#reject-all"].forEach(function (s) { root.querySelector(s).disabled = ro; });
    root.querySelector("#delete-box").disabled = ro || this.selected < 0;
    root.querySelector("#undo").disabled = ro || !this.undoStack.length;
    root.querySelector("#redo").disabled = ro || !this.redoStack.length;
    root.querySelector("#accept").disabled = ro || !pending;
    root.querySelector("#reject").disabled = ro || !pending;
  };

  // -- wiring ---------------------------------------------------------------------------------------
  Annotator.prototype._bind = function () {
    var self = this, root = this.root, c = this.canvas;
    c.addEventListener("mousedown", function (ev) { self._down(ev); });
    window.addEventListener("mousemove", function (ev) { self._move(ev); });
    window.addEventListener("mouseup", function (ev) { self._up(ev); });
    c.addEventListener("auxclick", function (ev) { if (ev.button === 1) ev.preventDefault(); });
    c.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var p = self._local(ev);
      self.zoom(Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015)), p.x, p.y);
    }, { passive: false });
    document.addEventListener("keydown", function (ev) { self._key(ev); });
    document.addEventListener("keyup", function (ev) {
      if (ev.key === " ") { self.spaceDown = false; self.canvas.style.cursor = ""; }
    });
    var on = function (sel, fn) {
      root.querySelector(sel).addEventListener("click", function () { fn.call(self); self.canvas.focus(); });
    };
    on("#prev", this.prev); on("#next", this.next); on("#no-objects", this.noObjects);
    on("#undo", this.undo); on("#redo", this.redo); on("#fit", this.fit);
    on("#add-box", this.addCentered); on("#delete-box", this.deleteSelected);
    on("#accept", function () { this.decide(true); }); on("#reject", function () { this.decide(false); });
    on("#accept-all", function () { this.decideAll(true); }); on("#reject-all", function () { this.decideAll(false); });
    window.addEventListener("pagehide", function () { self.flushOnExit(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") self.flushOnExit();
    });
    window.addEventListener("beforeunload", function () { self.flushOnExit(); });
    var finish = document.getElementById("finish-form");
    if (finish) finish.addEventListener("submit", function (ev) { ev.preventDefault(); self.finish(finish); });
    var cancel = document.getElementById("cancel-task");
    if (cancel) cancel.addEventListener("click", function () { self.cancelTask(); });
    var imp = document.getElementById("import-form");
    if (imp) imp.addEventListener("submit", function (ev) { ev.preventDefault(); self.importFile(imp); });
    var sync = document.getElementById("sync");
    if (sync) sync.addEventListener("click", function () { self.sync(sync); });
  };

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function round2(v) { return Math.round(v * 100) / 100; }

  function start(root, cfg) {
    if (!root) return null;
    var a = new Annotator(root, cfg);
    ymirAnnotator.current = a;
    return a;
  }

  // annotator_canvas.js (view, mouse, drawing) and annotator_session.js (the server: images, saving,
  // finishing) add their methods to Annotator.prototype; they load after this file, before start()
  return { start: start, Annotator: Annotator, current: null,
           util: { COLORS: COLORS, HANDLE: HANDLE, MIN_SIZE: MIN_SIZE, clamp: clamp, round2: round2 } };
})();
