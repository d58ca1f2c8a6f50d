/* ymir hub: the built-in annotator, its talk with the hub: images (lease, show, next, previous), autosave
 * and the keepalive save when the tab goes, task progress, finish, cancel, sync. Methods of
 * ymirAnnotator.Annotator (annotator.js loads first). */
"use strict";
(function (Annotator, util) {
  var round2 = util.round2;

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

  /** Import a Label Studio JSON export (POST .../import, multipart); show the per-file report. */
  Annotator.prototype.importFile = function (form) {
    var self = this, out = document.getElementById("import-report"), input = form.querySelector("[name=file]");
    if (!input.files.length) { out.textContent = "choose the JSON file first"; out.hidden = false; return null; }
    var data = new FormData();
    data.append("file", input.files[0]);
    return this.flush().then(function () {
      return self.api("POST", "/import", undefined, { body: data });
    }).then(function (report) {
      out.textContent = JSON.stringify(report, null, 2);
      out.hidden = false;
      self.refreshTask();
      return self.info ? self.show(self.info.sha1) : null;
    }).catch(function (e) {
      out.textContent = "import failed: " + e.message;
      out.hidden = false;
    });
  };

  Annotator.prototype.finish = function (form) {
    var self = this, body = {};
    var name = form.querySelector("[name=name]").value.trim();
    if (name) body.name = name;
    body.accept_predictions = form.querySelector("[name=accept_predictions]").checked;
    var button = form.querySelector("button");
    button.disabled = true;
    this.status("finishing…", "saving");
    var asked = false;
    return this.flush().then(function () { return self.api("GET", ""); }).then(function (t) {
      var left = (t.images_total || 0) - (t.images_done || 0);
      if (left > 0 && !window.confirm(left + " of " + t.images_total + " images are not done: they get no ground " +
          "truth" + (body.accept_predictions ? " but their untouched pre-annotations" : "") + ". Finish anyway?")) {
        asked = true;
        throw new Error("not yet");
      }
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
      if (asked) self.status("", "");
      else self.status("not finished: " + e.message, "error");
    });
  };

  Annotator.prototype.cancelTask = function () {
    var self = this;
    if (!window.confirm("Cancel this labeling task? Its labels make no version.")) return null;
    return this.flush().then(function () { return self.api("POST", "/cancel", {}); })
      .then(function () { window.location.reload(); })
      .catch(function (e) { self.status("not cancelled: " + e.message, "error"); });
  };
})(ymirAnnotator.Annotator, ymirAnnotator.util);
