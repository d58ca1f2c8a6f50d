"""Jobs (every long operation), executor images."""


def up(db) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,             -- train | mine | infer | import | export | evaluate | convert | ...
            category TEXT NOT NULL,         -- executor | internal
            project_id INTEGER,
            state TEXT NOT NULL,            -- queued | running | done | failed | cancelled
            progress REAL NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '',
            error_code TEXT,
            error TEXT,
            log_tail TEXT,
            backend TEXT,
            handle TEXT,
            owner TEXT,
            image TEXT,
            gpu_count INTEGER NOT NULL DEFAULT 0,
            timeout_s REAL,
            params TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL DEFAULT '{}',
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_by INTEGER,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        )
        """
    )
    db.execute("CREATE INDEX jobs_state ON jobs(state)")
    db.execute("CREATE INDEX jobs_project ON jobs(project_id, created_at)")
    db.execute(
        """
        CREATE TABLE monitor_history (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            ts REAL NOT NULL,
            percent REAL NOT NULL,
            state INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX monitor_history_job ON monitor_history(job_id, ts)")
    db.execute(
        """
        CREATE TABLE executor_images (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            docker_ref TEXT NOT NULL DEFAULT '',
            local_command TEXT NOT NULL DEFAULT '[]',
            description TEXT NOT NULL DEFAULT '',
            manifest TEXT NOT NULL DEFAULT '{}',
            templates TEXT NOT NULL DEFAULT '{}',   -- {"training": {...}, "mining": {...}, "infer": {...}}
            mining_image_id INTEGER,
            is_public INTEGER NOT NULL DEFAULT 0,
            builtin INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        )
        """
    )
