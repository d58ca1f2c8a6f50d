"""Users, API tokens, projects, classes and their aliases."""

from __future__ import annotations

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
            created_at REAL NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            last_used_at REAL
        );
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            owner_id INTEGER REFERENCES users(id),
            archived INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE classes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        );
        -- every name a class answers to (its main name and its aliases): one primary key keeps
        -- names and aliases unique across both
        CREATE TABLE class_names (
            name TEXT PRIMARY KEY,
            class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
            is_main INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX class_names_class ON class_names(class_id);
        CREATE TABLE project_targets (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            class_id INTEGER NOT NULL REFERENCES classes(id),
            position INTEGER NOT NULL,
            PRIMARY KEY (project_id, class_id)
        ) WITHOUT ROWID;
        """,
    )
