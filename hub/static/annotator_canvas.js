/* ymir hub: the built-in annotator, its canvas: the view (fit, zoom, pan), hit tests, mouse drags, drawing.
 * Methods of ymirAnnotator.Annotator (annotator.js loads first). */
"use strict";
(function (Annotator, util) {
  var clamp = util.clamp, COLORS = util.COLORS, HANDLE = util.HANDLE, MIN_SIZE = util.MIN_SIZE;

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
    // shift+drag always draws, so a box can be drawn inside another one
    var h = ev.shiftKey && !this.readonly ? { box: -1, corner: -1 } : this.hit(p);
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
})(ymirAnnotator.Annotator, ymirAnnotator.util);
