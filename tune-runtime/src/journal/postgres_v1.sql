-- tune-rs shared journal, schema version 1.
--
-- Applied by `PostgresJournal::connect` inside a transaction that holds an advisory lock,
-- so several processes connecting at once apply it once. Every statement is idempotent.
-- The tables live in the first schema of the connection's `search_path` (`public` unless
-- the URL says otherwise, e.g. `?options=-csearch_path%3Dtuning`).

-- One row per experiment: its name, and the next sequence number of its log. Appends lock
-- this row (SELECT ... FOR UPDATE) until they commit, so the numbers are gap-free and in
-- commit order, and claims, owners and leases change one append at a time.
CREATE TABLE IF NOT EXISTS tune_experiments (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    next_seq   bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The log: one row per record (a line of JSON), numbered from 0 per experiment.
CREATE TABLE IF NOT EXISTS tune_records (
    experiment bigint NOT NULL REFERENCES tune_experiments (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    writer     text NOT NULL,
    body       bytea NOT NULL,
    PRIMARY KEY (experiment, seq)
);

-- Claimed keys (`experiment`, `trial:17`): the first append that claims a key wins.
CREATE TABLE IF NOT EXISTS tune_claims (
    experiment bigint NOT NULL REFERENCES tune_experiments (id) ON DELETE CASCADE,
    key        text NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (experiment, key)
);

-- The processes of an experiment and their leases, on the server's clock.
CREATE TABLE IF NOT EXISTS tune_processes (
    experiment  bigint NOT NULL REFERENCES tune_experiments (id) ON DELETE CASCADE,
    id          text NOT NULL,
    lease_ms    bigint NOT NULL,
    lease_until timestamptz NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, id)
);

-- Which process runs each trial, how many times it changed owner, and whether it ended.
CREATE TABLE IF NOT EXISTS tune_owners (
    experiment bigint NOT NULL REFERENCES tune_experiments (id) ON DELETE CASCADE,
    trial      integer NOT NULL,
    owner      text NOT NULL,
    generation bigint NOT NULL,
    ended      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (experiment, trial)
);

-- Appends `records` in one transaction (the call itself) if process `me` holds its lease,
-- owns every trial of `trials`, and no key of `claims` is taken; creates `creates` (owned
-- by `me`, generation 0) and ends `ends`. Returns the sequence number of the first record.
-- Refusals raise SQLSTATE TU001 (claimed; DETAIL: the key), TU002 (not the owner; DETAIL:
-- the trial) or TU003 (lease expired). Listeners of `tune_journal_<experiment>` are
-- notified when it commits.
CREATE OR REPLACE FUNCTION tune_append_v1(
    exp bigint, me text, claims text[], creates integer[], trials integer[],
    ends integer[], records bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    bad_trial integer;
    bad_key text;
BEGIN
    SELECT next_seq INTO first_seq FROM tune_experiments WHERE id = exp FOR UPDATE;
    IF first_seq IS NULL THEN
        RAISE EXCEPTION 'experiment % does not exist', exp USING ERRCODE = 'TU004';
    END IF;
    PERFORM 1 FROM tune_processes
        WHERE experiment = exp AND id = me AND lease_until > clock_timestamp();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease expired' USING ERRCODE = 'TU003';
    END IF;
    SELECT t INTO bad_trial FROM unnest(trials) AS t
        LEFT JOIN tune_owners o ON o.experiment = exp AND o.trial = t
        WHERE o.owner IS DISTINCT FROM me LIMIT 1;
    IF bad_trial IS NOT NULL THEN
        RAISE EXCEPTION 'not the owner' USING ERRCODE = 'TU002', DETAIL = bad_trial::text;
    END IF;
    SELECT c.key INTO bad_key FROM tune_claims c
        WHERE c.experiment = exp AND c.key = ANY (claims) LIMIT 1;
    IF bad_key IS NOT NULL THEN
        RAISE EXCEPTION 'claimed' USING ERRCODE = 'TU001', DETAIL = bad_key;
    END IF;
    INSERT INTO tune_claims (experiment, key, seq)
        SELECT DISTINCT exp, k, first_seq FROM unnest(claims) AS k;
    INSERT INTO tune_owners (experiment, trial, owner, generation, ended)
        SELECT DISTINCT exp, t, me, 0, false FROM unnest(creates) AS t
        ON CONFLICT (experiment, trial)
        DO UPDATE SET owner = excluded.owner, generation = 0, ended = false;
    UPDATE tune_owners SET ended = true WHERE experiment = exp AND trial = ANY (ends);
    INSERT INTO tune_records (experiment, seq, writer, body)
        SELECT exp, first_seq + r.n - 1, me, r.body
        FROM unnest(records) WITH ORDINALITY AS r (body, n);
    UPDATE tune_experiments SET next_seq = first_seq + coalesce(array_length(records, 1), 0)
        WHERE id = exp;
    PERFORM pg_notify('tune_journal_' || exp, '');
    RETURN first_seq;
END
$$;

-- Takes trial `trial` over for `me` if it is still at `generation`, not ended, and its
-- owner's lease expired; appends `records` in the same transaction. Returns the sequence
-- number of the first record. Refusals: TU001 (another process took it, it ended, or its
-- owner is alive), TU003 (the lease of `me` expired).
CREATE OR REPLACE FUNCTION tune_take_over_v1(
    exp bigint, me text, trial_no integer, gen bigint, records bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    cur tune_owners%ROWTYPE;
BEGIN
    SELECT next_seq INTO first_seq FROM tune_experiments WHERE id = exp FOR UPDATE;
    IF first_seq IS NULL THEN
        RAISE EXCEPTION 'experiment % does not exist', exp USING ERRCODE = 'TU004';
    END IF;
    PERFORM 1 FROM tune_processes
        WHERE experiment = exp AND id = me AND lease_until > clock_timestamp();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease expired' USING ERRCODE = 'TU003';
    END IF;
    SELECT * INTO cur FROM tune_owners WHERE experiment = exp AND trial = trial_no;
    IF NOT FOUND OR cur.generation <> gen OR cur.ended THEN
        RAISE EXCEPTION 'taken' USING ERRCODE = 'TU001', DETAIL = 'trial:' || trial_no || ':owner';
    END IF;
    -- The owner's lease, locked: a heartbeat of that process that is in flight decides
    -- before this does.
    PERFORM 1 FROM tune_processes
        WHERE experiment = exp AND id = cur.owner AND lease_until > clock_timestamp()
        FOR UPDATE;
    IF FOUND THEN
        RAISE EXCEPTION 'alive' USING ERRCODE = 'TU001', DETAIL = 'trial:' || trial_no || ':owner';
    END IF;
    UPDATE tune_owners SET owner = me, generation = gen + 1
        WHERE experiment = exp AND trial = trial_no;
    INSERT INTO tune_records (experiment, seq, writer, body)
        SELECT exp, first_seq + r.n - 1, me, r.body
        FROM unnest(records) WITH ORDINALITY AS r (body, n);
    UPDATE tune_experiments SET next_seq = first_seq + coalesce(array_length(records, 1), 0)
        WHERE id = exp;
    PERFORM pg_notify('tune_journal_' || exp, '');
    RETURN first_seq;
END
$$;
