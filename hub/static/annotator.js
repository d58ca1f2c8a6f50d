/* ymir hub: the built-in annotator (plain JS + canvas, no build step).
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

  // -- the JSON API --------------------------------------------------------------------------------
  Annotator.prototype.api = function (method, path, body, extra) {
    var opts = { method: method, credentials: "same-origin",
                 headers: { Accept: "application/json", "X-CSRF-Token": this.csrf } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    Object.keys(extra || {}).forEach(function (k) { opts[k] = extra[k]; });
    return fetch(this.cfg.api + path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
        if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
        return data;
      });
    });
  };

  Annotator.prototype.status = function (text, kind) {
    var el = this.root.querySelector("#save-status");
    el.textContent = text;
    el.className = "ann-save" + (kind ? " " + kind : "");
    this.root.dataset.saveState = kind || "";
  };

  Annotator.prototype.message = function (text) {
    var el = this.root.querySelector("#stage-message");
    el.textContent = text || "";
    el.hidden = !text;
  };

  // -- images: show, next, previous -----------------------------------------------------------------
  Annotator.prototype._loadTrail = function () {
    try {
      var t = JSON.parse(window.sessionStorage.getItem(this.trailKey) || "null");
      if (t && Array.isArray(t.list)) return t;
    } catch (e) { /* no storage: a trail for this page only */ }
    return { list: [], pos: -1 };
  };

  Annotator.prototype._saveTrail = function () {
    try { window.sessionStorage.setItem(this.trailKey, JSON.stringify(this.trail)); } catch (e) { /* ignore */ }
  };

  Annotator.prototype.show = function (sha1) {
    var self = this;
    return this.api("GET", "/images/" + sha1).then(function (info) {
      var pos = self.trail.list.indexOf(sha1);
      if (pos < 0) { self.trail.list.splice(self.trail.pos + 1, 0, sha1); pos = self.trail.pos + 1; }
      self.trail.pos = pos;
      self._saveTrail();
      return self._open(info);
    }).catch(function (e) { self.status("cannot open the image: " + e.message, "error"); });
  };

  Annotator.prototype._open = function (info) {
    var self = this;
    return new Promise(function (resolve) {
      var img = new Image();
      img.onload = function () {
        self.info = info;
        self.img = img;
        var done = info.state === "done";
        self.boxes = (info.boxes || []).map(function (b) {
          var source = b.source || (info.source === "prediction" ? "prediction" : "human");
          return { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2, cls: b["class"], source: source,
                   pending: !done && source === "prediction", confidence: b.confidence };
        });
        self.selected = -1;
        self.undoStack = [];
        self.redoStack = [];
        self.dirty = false;
        self.markedEmpty = done && !self.boxes.length;
        self.message("");
        self.fit();
        self._updatePanel();
        self.status(done ? "done" : (info.source === "saved" ? "saved, not done" : "not saved yet"), "");
        var lease = info.lease;
        if (!self.readonly && !done && lease && lease.user_id !== self.cfg.userId) {
          self.status("another labeler holds this image until " +
                      new Date(lease.until * 1000).toLocaleTimeString() + ": changes would be refused", "error");
        }
        var url = new URL(window.location.href);
        if (!self.readonly) { url.searchParams.set("image", info.sha1); window.history.replaceState(null, "", url); }
        self.root.dataset.sha1 = info.sha1;
        resolve(info);
      };
      img.onerror = function () { self.status("the image cannot be loaded", "error"); resolve(null); };
      img.src = self.cfg.imageUrl.replace("{sha1}", info.sha1);
    });
  };

  Annotator.prototype.next = function () {
    var self = this;
    if (this.readonly) return this._showIndex(this.readIndex + 1);
    return this.flush().then(function () {
      if (self.trail.pos >= 0 && self.trail.pos < self.trail.list.length - 1) {
        return self.show(self.trail.list[self.trail.pos + 1]);
      }
      var after = self.info ? self.info.sha1 : undefined;
      return self.api("POST", "/next", after ? { after: after } : {}).then(function (r) {
        if (!r || !r.sha1) {
          self.message("No image left to label: every image is done or being labeled by someone else. " +
                       "Finish the task below when everyone is done.");
          self.status(self.info ? "last image" : "", "");
          return null;
        }
        if (self.info && r.sha1 === self.info.sha1) {
          self.status("no other image left to label: this one is not done yet", "");
          return self.info;
        }
        // a leased image goes at the end of the trail
        self.trail.list = self.trail.list.filter(function (s) { return s !== r.sha1; });
        self.trail.pos = self.trail.list.length - 1;
        return self.show(r.sha1);
      });
    }).catch(function (e) { self.status("next image: " + e.message, "error"); });
  };

  Annotator.prototype.prev = function () {
    var self = this;
    if (this.readonly) return this._showIndex(this.readIndex - 1);
    return this.flush().then(function () {
      var pos = self.info ? self.trail.list.indexOf(self.info.sha1) : self.trail.pos;
      if (pos > 0) return self.show(self.trail.list[pos - 1]);
      self.status("this is the first image you opened", "");
      return null;
    });
  };

  Annotator.prototype._showIndex = function (index) {
    var self = this;
    if (index < 0) return Promise.resolve(null);
    return this.api("GET", "/images?offset=" + index + "&limit=1").then(function (r) {
      if (!r.images.length) return null;
      self.readIndex = index;
      return self._open(r.images[0]).then(function () {
        self.status("image " + (index + 1) + " of " + r.total + " (read only: the task is " + self.cfg.state + ")", "");
      });
    }).catch(function (e) { self.status(e.message, "error"); });
  };

  // -- saving ---------------------------------------------------------------------------------------
  Annotator.prototype.pendingCount = function () {
    return this.boxes.filter(function (b) { return b.pending; }).length;
  };

  Annotator.prototype._payload = function () {
    var boxes = this.boxes.map(function (b) {
      return { x1: round2(b.x1), y1: round2(b.y1), x2: round2(b.x2), y2: round2(b.y2), "class": b.cls,
               source: b.source };
    });
    var done = this.pendingCount() === 0 && (boxes.length > 0 || this.markedEmpty);
    return { boxes: boxes, done: done };
  };

  Annotator.prototype.changed = function () {
    var self = this;
    this.dirty = true;
    if (this.boxes.length) this.markedEmpty = false;
    this._updatePanel();
    this.draw();
    this.status("unsaved", "dirty");
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(function () { self.flush(); }, this.saveDelay);
  };

  /** Save now if anything changed; resolves once every save so far has landed. */
  Annotator.prototype.flush = function () {
    var self = this;
    clearTimeout(this.saveTimer);
    if (!this.dirty || !this.info || this.readonly) return this.saving;
    var sha1 = this.info.sha1, payload = this._payload();
    this.dirty = false;
    this.status("saving…", "saving");
    this.saving = this.saving.then(function () {
      return self.api("PUT", "/images/" + sha1, payload).then(function (state) {
        if (self.info && self.info.sha1 === sha1 && state) self.info.state = state.state;
        if (!self.dirty) self.status(payload.done ? "saved · done" : "saved", "saved");
        self._updatePanel();
        return self.refreshTask();
      }).catch(function (e) {
        if (self.info && self.info.sha1 === sha1) self.dirty = true;   // try again with the next change
        self.status("not saved: " + e.message, "error");
      });
    });
    return this.saving;
  };

  /** The tab is being hidden or closed: send what is unsaved in a request that outlives the page. */
  Annotator.prototype.flushOnExit = function () {
    if (!this.dirty || !this.info || this.readonly) return;
    clearTimeout(this.saveTimer);
    this.dirty = false;
    try {
      fetch(this.cfg.api + "/images/" + this.info.sha1, {
        method: "PUT", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": this.csrf },
        body: JSON.stringify(this._payload())
      });
    } catch (e) { this.dirty = true; }
  };

  Annotator.prototype.refreshTask = function () {
    var self = this;
    return this.api("GET", "").then(function (t) {
      var bar = document.getElementById("task-progress");
      if (bar) { bar.max = t.images_total || 1; bar.value = t.images_done || 0; }
      var text = document.getElementById("progress-text");
      if (text) text.textContent = (t.images_done || 0) + " / " + (t.images_total || 0) + " images done";
      var st = document.getElementById("task-state");
      if (st) { st.textContent = t.state; st.className = "badge task-state state-" + t.state; }
    }).catch(function () { /* progress is a nicety */ });
  };

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

  // -- view: fit, zoom, pan, coordinates ------------------------------------------------------------
  Annotator.prototype._resize = function () {
    var dpr = window.devicePixelRatio || 1;
    var w = this.stage.clientWidth, h = this.stage.clientHeight;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.canvas.style.width = w + "px";
    this.canvas.style.height = h + "px";
    if (this.view.fitted) this.fit(); else this.draw();
  };

  Annotator.prototype.fit = function () {
    if (!this.info) { this.draw(); return; }
    var w = this.stage.clientWidth, h = this.stage.clientHeight, pad = 8;
    var s = Math.min((w - 2 * pad) / this.info.width, (h - 2 * pad) / this.info.height);
    if (!(s > 0)) s = 1;
    this.view = { s: s, ox: (w - this.info.width * s) / 2, oy: (h - this.info.height * s) / 2, fitted: true };
    this.draw();
  };

  Annotator.prototype.zoom = function (factor, cx, cy) {
    var v = this.view, s = clamp(v.s * factor, 0.02, 64);
    if (cx === undefined) { cx = this.stage.clientWidth / 2; cy = this.stage.clientHeight / 2; }
    v.ox = cx - (cx - v.ox) * (s / v.s);
    v.oy = cy - (cy - v.oy) * (s / v.s);
    v.s = s;
    v.fitted = false;
    this.draw();
  };

  /** Canvas (CSS px) -> image px. */
  Annotator.prototype.toImage = function (cx, cy) {
    return { x: (cx - this.view.ox) / this.view.s, y: (cy - this.view.oy) / this.view.s };
  };

  /** Image px -> page viewport px (what mouse events report; the browser test uses it). */
  Annotator.prototype.toClient = function (x, y) {
    var r = this.canvas.getBoundingClientRect();
    return { x: r.left + this.view.ox + x * this.view.s, y: r.top + this.view.oy + y * this.view.s };
  };

  Annotator.prototype._local = function (ev) {
    var r = this.canvas.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  };

  Annotator.prototype._corners = function (b) {
    return [[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]];
  };

  /** What is under a canvas point: a corner of the selected box, else the smallest box around it. */
  Annotator.prototype.hit = function (p) {
    var self = this, v = this.view;
    var sel = this.boxes[this.selected];
    if (sel) {
      var corners = this._corners(sel);
      for (var c = 0; c < 4; c++) {
        var sx = v.ox + corners[c][0] * v.s, sy = v.oy + corners[c][1] * v.s;
        if (Math.abs(p.x - sx) <= HANDLE + 3 && Math.abs(p.y - sy) <= HANDLE + 3) return { box: this.selected, corner: c };
      }
    }
    var q = this.toImage(p.x, p.y), best = -1, area = Infinity;
    this.boxes.forEach(function (b, i) {
      var a = (b.x2 - b.x1) * (b.y2 - b.y1);
      if (q.x >= b.x1 && q.x <= b.x2 && q.y >= b.y1 && q.y <= b.y2 && a < area) { best = i; area = a; }
    });
    return best >= 0 ? { box: best, corner: -1 } : (self.info ? { box: -1, corner: -1 } : null);
  };

  // -- mouse ----------------------------------------------------------------------------------------
  Annotator.prototype._down = function (ev) {
    if (!this.info) return;
    this.canvas.focus();
    var p = this._local(ev);
    if (ev.button === 1 || (ev.button === 0 && this.spaceDown)) {
      this.drag = { mode: "pan", x: ev.clientX, y: ev.clientY, ox: this.view.ox, oy: this.view.oy };
      ev.preventDefault();
      return;
    }
    if (ev.button !== 0) return;
    var h = this.hit(p);
    var q = this.toImage(p.x, p.y);
    if (h.box >= 0) {
      this.select(h.box);
      if (this.readonly) return;
      var b = this.boxes[h.box];
      var before = this.snapshot();
      if (h.corner >= 0) {
        var opposite = this._corners(b)[(h.corner + 2) % 4];
        this.drag = { mode: "resize", fx: opposite[0], fy: opposite[1], before: before };
      } else {
        this.drag = { mode: "move", sx: q.x, sy: q.y, orig: Object.assign({}, b), before: before };
      }
    } else {
      this.select(-1);
      if (this.readonly) return;
      var w = this.info.width, hh = this.info.height;
      this.drag = { mode: "draw", sx: clamp(q.x, 0, w), sy: clamp(q.y, 0, hh), box: null };
    }
    ev.preventDefault();
  };

  Annotator.prototype._move = function (ev) {
    var d = this.drag;
    if (!d) { this._cursor(ev); return; }
    if (d.mode === "pan") {
      this.view.ox = d.ox + ev.clientX - d.x;
      this.view.oy = d.oy + ev.clientY - d.y;
      this.view.fitted = false;
      this.draw();
      return;
    }
    var p = this._local(ev), q = this.toImage(p.x, p.y);
    var w = this.info.width, h = this.info.height;
    var x = clamp(q.x, 0, w), y = clamp(q.y, 0, h);
    if (d.mode === "draw") {
      d.box = { x1: Math.min(d.sx, x), y1: Math.min(d.sy, y), x2: Math.max(d.sx, x), y2: Math.max(d.sy, y) };
    } else if (d.mode === "resize") {
      var b = this.boxes[this.selected];
      b.x1 = Math.min(d.fx, x); b.x2 = Math.max(d.fx, x);
      b.y1 = Math.min(d.fy, y); b.y2 = Math.max(d.fy, y);
      d.moved = true;
    } else if (d.mode === "move") {
      var o = d.orig, bx = this.boxes[this.selected];
      var dx = clamp(q.x - d.sx, -o.x1, w - o.x2), dy = clamp(q.y - d.sy, -o.y1, h - o.y2);
      bx.x1 = o.x1 + dx; bx.x2 = o.x2 + dx; bx.y1 = o.y1 + dy; bx.y2 = o.y2 + dy;
      d.moved = d.moved || dx !== 0 || dy !== 0;
    }
    this.draw();
  };

  Annotator.prototype._up = function () {
    var d = this.drag;
    this.drag = null;
    if (!d || d.mode === "pan") return;
    if (d.mode === "draw") {
      var b = d.box;
      if (b && b.x2 - b.x1 >= MIN_SIZE && b.y2 - b.y1 >= MIN_SIZE) {
        this.addBox({ x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2, cls: this.className(this.defaultClass),
                      source: "human", pending: false });
      } else {
        this.draw();
      }
      return;
    }
    if (!d.moved) return;
    var box = this.boxes[this.selected];
    if (box.x2 - box.x1 < MIN_SIZE || box.y2 - box.y1 < MIN_SIZE) {   // squashed flat: undo the drag
      this.boxes = d.before.boxes;
      this.draw();
      return;
    }
    this.undoStack.push(d.before);
    this.redoStack = [];
    this.lastNudge = null;
    box.source = "human";
    box.pending = false;
    this.changed();
  };

  Annotator.prototype._cursor = function (ev) {
    if (!this.info) return;
    if (this.spaceDown) { this.canvas.style.cursor = "grab"; return; }
    var h = this.hit(this._local(ev));
    var corner = ["nwse-resize", "nesw-resize", "nwse-resize", "nesw-resize"];
    this.canvas.style.cursor = h && h.corner >= 0 ? corner[h.corner] : (h && h.box >= 0 ? "move" : "crosshair");
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

  // -- drawing --------------------------------------------------------------------------------------
  Annotator.prototype.colorOf = function (cls) {
    var i = this.cfg.classes.indexOf(cls);
    return i < 0 ? "#999" : COLORS[i % COLORS.length];
  };

  Annotator.prototype.draw = function () {
    var ctx = this.ctx, dpr = window.devicePixelRatio || 1, v = this.view, self = this;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, this.canvas.width / dpr, this.canvas.height / dpr);
    if (!this.img || !this.info) return;
    ctx.imageSmoothingEnabled = v.s < 4;
    ctx.drawImage(this.img, v.ox, v.oy, this.info.width * v.s, this.info.height * v.s);
    var list = this.boxes.slice();
    if (this.drag && this.drag.mode === "draw" && this.drag.box) {
      list.push(Object.assign({ cls: this.className(this.defaultClass), source: "human", drawing: true }, this.drag.box));
    }
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    list.forEach(function (b, i) {
      var x = v.ox + b.x1 * v.s, y = v.oy + b.y1 * v.s, w = (b.x2 - b.x1) * v.s, h = (b.y2 - b.y1) * v.s;
      var color = self.colorOf(b.cls), selected = i === self.selected && !b.drawing;
      ctx.setLineDash(b.pending ? [6, 4] : []);
      ctx.lineWidth = selected ? 3 : 2;
      ctx.strokeStyle = "rgba(0,0,0,.7)";
      ctx.strokeRect(x - 1, y - 1, w + 2, h + 2);   // a dark halo: visible on any image
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
      ctx.setLineDash([]);
      if (selected) {
        ctx.fillStyle = "rgba(255,255,255,.12)";
        ctx.fillRect(x, y, w, h);
        self._corners(b).forEach(function (c) {
          var cx = v.ox + c[0] * v.s, cy = v.oy + c[1] * v.s;
          ctx.fillStyle = "#fff";
          ctx.fillRect(cx - HANDLE, cy - HANDLE, 2 * HANDLE, 2 * HANDLE);
          ctx.strokeStyle = color;
          ctx.lineWidth = 2;
          ctx.strokeRect(cx - HANDLE, cy - HANDLE, 2 * HANDLE, 2 * HANDLE);
        });
      }
      var label = (i + 1) + " " + (b.cls || "?") + (b.pending ? " ?" : "");
      var tw = ctx.measureText(label).width + 6;
      ctx.fillStyle = color;
      ctx.globalAlpha = b.pending ? 0.6 : 0.9;
      ctx.fillRect(x, y - 16, tw, 16);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x + 3, y - 2);
    });
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
    var sync = document.getElementById("sync");
    if (sync) sync.addEventListener("click", function () { self.sync(sync); });
  };

  /** Pull the external backend's labels now; show its report and the image as it is after the pull. */
  Annotator.prototype.sync = function (button) {
    var self = this, out = document.getElementById("sync-report");
    button.disabled = true;
    return this.flush().then(function () { return self.api("POST", "/sync", {}); }).then(function (report) {
      out.textContent = JSON.stringify(report, null, 2);
      out.hidden = false;
      self.refreshTask();
      if (self.info) return self.show(self.info.sha1);
      return null;
    }).catch(function (e) {
      out.textContent = "sync failed: " + e.message;
      out.hidden = false;
    }).then(function () { button.disabled = false; });
  };

  Annotator.prototype.finish = function (form) {
    var self = this, body = {};
    var name = form.querySelector("[name=name]").value.trim();
    if (name) body.name = name;
    body.accept_predictions = form.querySelector("[name=accept_predictions]").checked;
    var button = form.querySelector("button");
    button.disabled = true;
    this.status("finishing…", "saving");
    return this.flush().then(function () {
      return self.api("POST", "/finish", body);
    }).then(function (task) {
      self.readonly = true;
      if (task && task.result_version_id) {
        window.location.href = self.cfg.versionUrl.replace("{id}", task.result_version_id);
      } else {
        window.location.reload();
      }
    }).catch(function (e) {
      button.disabled = false;
      self.status("not finished: " + e.message, "error");
    });
  };

  Annotator.prototype.cancelTask = function () {
    var self = this;
    if (!window.confirm("Cancel this labeling task? Its labels make no version.")) return null;
    return this.flush().then(function () { return self.api("POST", "/cancel", {}); })
      .then(function () { window.location.reload(); })
      .catch(function (e) { self.status("not cancelled: " + e.message, "error"); });
  };

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function round2(v) { return Math.round(v * 100) / 100; }

  function start(root, cfg) {
    if (!root) return null;
    var a = new Annotator(root, cfg);
    ymirAnnotator.current = a;
    return a;
  }

  return { start: start, Annotator: Annotator, current: null };
})();
