"""The iteration workflow: a project's preparation (fixed sets, initial model, goals), its rounds, their steps.

A round's steps are rows with their state, parameters, the job or labeling task that carries them out and
their output (version / model ids), so a restarted hub finds every round where it stood.
"""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE iteration_setups (
            project_id INTEGER PRIMARY KEY REFERENCES projects(id),
            training_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            mining_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            validation_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            test_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            initial_model_id INTEGER REFERENCES models(id),
            initial_stage TEXT,
            goal_map REAL,
            goal_train_images INTEGER,
            params TEXT NOT NULL DEFAULT '{}',       -- sticky step parameters, by step name
            created_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL
        );
        CREATE TABLE iterations (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            round INTEGER NOT NULL,                  -- 0: the initial model's round (training only)
            state TEXT NOT NULL CHECK (state IN ('active', 'done')),
            training_version_id INTEGER NOT NULL,    -- the training set the round starts from
            mining_version_id INTEGER NOT NULL,      -- the mining set of this round
            model_id INTEGER,                        -- the model the round mines with
            model_stage TEXT,
            result TEXT NOT NULL DEFAULT '{}',       -- model_id, test_map, training_version_id, ...
            created_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (project_id, round)
        );
        CREATE TABLE iteration_steps (
            iteration_id INTEGER NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
            step TEXT NOT NULL,
            position INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'skipped', 'failed')),
            phase TEXT NOT NULL DEFAULT '',          -- e.g. training -> testing inside the training step
            params TEXT NOT NULL DEFAULT '{}',
            job_id TEXT,
            task_id INTEGER,
            output TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (iteration_id, step)
        ) WITHOUT ROWID
        """,
    )
