"""Login, projects, classes, account/tokens, users (admin), placeholders."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from detkit.errors import TooManyRequests, Unauthorized
from hub import auth, login_limit
from hub.store import classes as class_store
from hub.store import datasets as ds_store
from hub.store import projects as project_store
from hub.store import users as user_store
from hub.web import PROJECT_SECTIONS, bp
from hub.web.util import database, form_action, split_names, state


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status, headers = None, 200, {}
    if request.method == "POST":
        db, settings = database(), state().settings
        username, address = request.form.get("username", ""), request.remote_addr
        try:
            login_limit.check(db, settings, address, username)  # before the password is even hashed
            user = auth.verify_login(db, username, request.form.get("password", ""))
        except TooManyRequests as exc:
            error, status, headers = exc.message, exc.status, {"Retry-After": str(exc.retry_after)}
        except Unauthorized as exc:  # show the form again
            login_limit.failed(db, settings, address, username)
            error, status = exc.message, exc.status
        else:
            login_limit.succeeded(db, address, username)
            auth.login_session(user)
            target = request.args.get("next") or ""
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("web.projects")
            return redirect(target)
    return render_template("login.html", error=error), status, headers


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
def index():
    return redirect(url_for("web.projects"))


@bp.get("/projects")
def projects():
    include = request.args.get("archived") == "1"
    return render_template(
        "projects.html",
        projects=project_store.list_projects(database(), include_archived=include),
        classes=class_store.list_classes(database()),
        show_archived=include,
    )


@bp.post("/projects")
@form_action(lambda: url_for("web.projects"))
def create_project():
    p = project_store.create_project(
        database(),
        request.form.get("name", ""),
        description=request.form.get("description", ""),
        targets=request.form.getlist("classes") or split_names(request.form.get("class_names")),
        owner_id=g.user["id"],
    )
    flash(f"project {p['name']} created", "ok")
    return redirect(url_for("web.project", project_id=p["id"]))


@bp.get("/projects/<int:project_id>")
def project(project_id: int):
    p = project_store.get_project(database(), project_id)
    return render_template(
        "project.html",
        project=p,
        section="datasets",
        groups=ds_store.list_groups(database(), project_id),
        classes=class_store.list_classes(database()),
    )


@bp.post("/projects/<int:project_id>/edit")
@form_action(lambda project_id: url_for("web.project", project_id=project_id))
def edit_project(project_id: int):
    project_store.update_project(
        database(),
        project_id,
        name=request.form.get("name"),
        description=request.form.get("description"),
        targets=request.form.getlist("classes"),
    )
    flash("project saved", "ok")
    return redirect(url_for("web.project", project_id=project_id))


@bp.post("/projects/<int:project_id>/archive")
@form_action(lambda project_id: url_for("web.project", project_id=project_id))
def archive_project(project_id: int):
    archived = request.form.get("archived", "1") == "1"
    project_store.update_project(database(), project_id, archived=archived)
    flash("project archived" if archived else "project restored", "ok")
    return redirect(url_for("web.project", project_id=project_id))


@bp.get("/projects/<int:project_id>/<section>")
def project_section(project_id: int, section: str):
    labels = dict(PROJECT_SECTIONS)
    if section not in labels:
        abort(404)
    p = project_store.get_project(database(), project_id)
    return render_template("placeholder.html", project=p, section=section, title=labels[section])


@bp.get("/classes")
def classes():
    return render_template("classes.html", classes=class_store.list_classes(database()))


@bp.post("/classes")
@form_action(lambda: url_for("web.classes"))
def add_class():
    c = class_store.add_class(
        database(), request.form.get("name", ""), split_names(request.form.get("aliases"))
    )
    flash(f"class {c['name']} added", "ok")
    return redirect(url_for("web.classes"))


@bp.post("/classes/<name>/rename")
@form_action(lambda name: url_for("web.classes"))
def rename_class(name: str):
    c = class_store.rename_class(database(), name, request.form.get("new_name", ""))
    flash(f"class renamed to {c['name']}", "ok")
    return redirect(url_for("web.classes"))


@bp.post("/classes/<name>/alias")
@form_action(lambda name: url_for("web.classes"))
def add_alias(name: str):
    c = class_store.add_alias(database(), name, request.form.get("alias", ""))
    flash(f"alias added to {c['name']}", "ok")
    return redirect(url_for("web.classes"))


@bp.get("/account")
def account():
    return render_template(
        "account.html",
        tokens=user_store.list_tokens(database(), g.user["id"]),
        new_token=session.pop("new_token", None),
    )


@bp.post("/account/tokens")
@form_action(lambda: url_for("web.account"))
def create_token():
    session["new_token"] = user_store.create_token(database(), g.user["id"], request.form.get("label", ""),
                                                   request.form.get("scope") or None)
    return redirect(url_for("web.account"))


@bp.get("/users")
@auth.require_admin
def users():
    return render_template("users.html", users=user_store.list_users(database()))


@bp.post("/users")
@auth.require_admin
@form_action(lambda: url_for("web.users"))
def add_user():
    u = auth.add_user(
        database(),
        request.form.get("username", ""),
        request.form.get("password", ""),
        request.form.get("role", "user"),
    )
    flash(f"user {u['username']} added", "ok")
    return redirect(url_for("web.users"))
