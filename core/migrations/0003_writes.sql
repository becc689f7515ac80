-- Writes: gap-free issue numbers, idempotent creates, and the event outbox.

-- The last issue number handed out per project. createIssue increments it under the
-- project row's lock, so numbers are unique and gap-free even under concurrent creates
-- (a rolled-back create rolls its increment back too).
ALTER TABLE projects ADD COLUMN issue_count integer NOT NULL DEFAULT 0;
UPDATE projects p SET issue_count = coalesce(
    (SELECT max(number) FROM issues i WHERE i.project_id = p.id), 0);

-- A create repeated by the same viewer with the same clientMutationId returns the first
-- result: the receipt is written in the create's own transaction.
CREATE TABLE mutation_receipts (
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mutation           text NOT NULL,
    client_mutation_id text NOT NULL,
    result_id          bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, mutation, client_mutation_id)
);

-- The outbox: every change to an issue is recorded here in the transaction that makes it,
-- and announced with NOTIFY (delivered on commit) to every server process.
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    issue_id   bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    comment_id bigint,
    label_ids  bigint[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_project ON events (project_id, id);
CREATE INDEX events_issue ON events (issue_id, id);
