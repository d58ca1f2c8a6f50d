"""The fleet: devices, their desired slots and reported states, metrics, commands, algorithms
(published model packages) and their artifacts, deployments with per-device rollout rows, and
prediction records streamed from devices."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE devices (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            project_id INTEGER REFERENCES projects(id),
            token_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            online INTEGER NOT NULL DEFAULT 0,
            last_seen REAL,
            status TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            desired_revision INTEGER NOT NULL DEFAULT 0,
            published_revision INTEGER NOT NULL DEFAULT -1,
            last_seq INTEGER NOT NULL DEFAULT 0
        );
        -- what the hub wants on a device: one row per deployment name (the retained desired state)
        CREATE TABLE device_slots (
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            entry TEXT NOT NULL,
            algorithm_id INTEGER,
            deployment_id INTEGER,
            PRIMARY KEY (device_id, name)
        ) WITHOUT ROWID;
        -- what the device last reported per deployment name
        CREATE TABLE device_reported (
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            revision INTEGER NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            sha256 TEXT NOT NULL DEFAULT '',
            seq INTEGER NOT NULL DEFAULT 0,
            ts REAL NOT NULL,
            PRIMARY KEY (device_id, name)
        ) WITHOUT ROWID;
        CREATE TABLE device_metrics (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            ts REAL NOT NULL,
            inferences INTEGER,
            errors INTEGER,
            p50_ms REAL,
            p95_ms REAL,
            outbox_depth INTEGER,
            cpu_percent REAL,
            memory_mb REAL
        );
        CREATE INDEX device_metrics_device ON device_metrics(device_id, ts);
        CREATE TABLE device_commands (
            id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            action TEXT NOT NULL,
            deployment TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            ok INTEGER,
            result TEXT,
            error TEXT NOT NULL DEFAULT '',
            finished_at REAL
        );
        CREATE INDEX device_commands_device ON device_commands(device_id, created_at);
        CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE algorithms (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            project_id INTEGER REFERENCES projects(id),
            model_id INTEGER REFERENCES models(id),
            stage TEXT NOT NULL DEFAULT '',
            sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            size INTEGER NOT NULL,
            backend TEXT NOT NULL DEFAULT 'onnxruntime',
            precision TEXT NOT NULL DEFAULT 'fp32',
            class_names TEXT NOT NULL DEFAULT '[]',
            manifest TEXT NOT NULL DEFAULT '{}',
            owner_id INTEGER REFERENCES users(id),
            visibility TEXT NOT NULL DEFAULT 'private'
                CHECK (visibility IN ('private', 'pending', 'public', 'rejected')),
            review_note TEXT NOT NULL DEFAULT '',
            reviewed_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL,
            UNIQUE (name, version)
        );
        CREATE TABLE deployments (
            id INTEGER PRIMARY KEY,
            algorithm_id INTEGER NOT NULL REFERENCES algorithms(id),
            name TEXT NOT NULL,
            backend TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            target_kind TEXT NOT NULL CHECK (target_kind IN ('device', 'tag', 'all')),
            target_value TEXT NOT NULL DEFAULT '',
            batch_percent REAL NOT NULL DEFAULT 100,
            success_threshold REAL NOT NULL DEFAULT 1.0,
            max_failures INTEGER NOT NULL DEFAULT 1,
            state TEXT NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'completed', 'aborted', 'rolling_back', 'rolled_back')),
            current_batch INTEGER NOT NULL DEFAULT 0,
            batches INTEGER NOT NULL DEFAULT 1,
            message TEXT NOT NULL DEFAULT '',
            created_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE TABLE deployment_devices (
            deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            batch INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            revision INTEGER,
            previous TEXT,
            reason TEXT NOT NULL DEFAULT '',
            sent_at REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (deployment_id, device_id)
        ) WITHOUT ROWID;
        CREATE INDEX deployment_devices_device ON deployment_devices(device_id, state);
        CREATE TABLE edge_predictions (
            id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            deployment TEXT NOT NULL DEFAULT '',
            revision INTEGER,
            ts REAL NOT NULL,
            boxes INTEGER NOT NULL DEFAULT 0,
            latency_ms REAL,
            record TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX edge_predictions_device ON edge_predictions(device_id, ts)
        """,
    )
