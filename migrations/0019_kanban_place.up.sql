-- Kanban placement in the database: a card's key is computed, and the card written, in one
-- statement under a lock of its column, so a move costs one round trip and reads its neighbours
-- after every earlier move or rebalance of that column committed.
--
-- These functions run with the caller's rights and name every table with its schema; they set
-- no search_path, which would cost a configuration change on every call, and are PL/pgSQL, whose
-- plans a session keeps (a SQL function called from PL/pgSQL is planned again in every
-- transaction): a move calls them a dozen times.
--
-- Keys are fractions in base 62 written as their digits after the point (`0-9`, `A-Z`, `a-z`, in
-- ASCII order, so bytewise comparison — `position` is COLLATE "C" — is numeric comparison), never
-- ending in the zero digit. Between any two different keys there is another, so a move writes
-- only its card; keys grow by about one digit per six moves into the same gap, and a column whose
-- keys got long is given fresh, evenly spaced ones.

-- The digits of a valid key (non-empty, base 62, not ending in `0`), or NULL.
CREATE FUNCTION app.rank_digits(key text) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    digits int[] := '{}';
    digit int;
BEGIN
    FOR i IN 1..length(key) LOOP
        digit := strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', substr(key, i, 1)) - 1;
        IF digit < 0 THEN
            RETURN NULL;
        END IF;
        digits := digits || digit;
    END LOOP;
    IF coalesce(digits[cardinality(digits)], 0) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN digits;
END $$;

-- The key of `digits`, trailing zero digits dropped (NULL when nothing is left).
CREATE FUNCTION app.rank_key(digits int[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    key text := '';
BEGIN
    FOR i IN 1..cardinality(digits) LOOP
        key := key || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', digits[i] + 1, 1);
    END LOOP;
    RETURN nullif(rtrim(key, '0'), '');
END $$;

-- A fraction strictly between `a` and `b` (NULL: 1), given a < b, neither ending in zero.
CREATE FUNCTION app.rank_midpoint(a int[], b int[]) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    common int := 0;
    low int;
    high int;
BEGIN
    IF b IS NOT NULL THEN
        WHILE common < cardinality(b) AND coalesce(a[common + 1], 0) = b[common + 1] LOOP
            common := common + 1;
        END LOOP;
        IF common > 0 THEN
            RETURN b[1:common] || app.rank_midpoint(a[common + 1:], b[common + 1:]);
        END IF;
    END IF;
    low := coalesce(a[1], 0);
    high := coalesce(b[1], 62);
    IF high - low > 1 THEN
        RETURN ARRAY[(low + high) / 2];
    END IF;
    -- Neighbouring first digits: b's first digit alone, if b goes on; else a's, then further.
    IF cardinality(b) > 1 THEN
        RETURN ARRAY[b[1]];
    END IF;
    RETURN low || app.rank_midpoint(a[2:], NULL);
END $$;

-- `key` moved one unit in its last place (at least the third), up or down; NULL when that leaves
-- the range. At a column's ends this keeps keys short: appending a card thousands of times adds
-- no digit, where halving the gap to the end would add one every six cards.
CREATE FUNCTION app.rank_step(key int[], up boolean) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    digits int[] := key || array_fill(0, ARRAY[greatest(3 - cardinality(key), 0)]);
    place int := cardinality(digits);
BEGIN
    LOOP
        IF place = 0 THEN
            RETURN NULL;
        END IF;
        IF up AND digits[place] < 61 THEN
            digits[place] := digits[place] + 1;
            EXIT;
        ELSIF NOT up AND digits[place] > 0 THEN
            digits[place] := digits[place] - 1;
            EXIT;
        END IF;
        digits[place] := CASE WHEN up THEN 0 ELSE 61 END;
        place := place - 1;
    END LOOP;
    RETURN app.rank_digits(app.rank_key(digits));
END $$;

-- A key between `low` and `high` (either NULL: the column's start or end), or NULL when there is
-- none: equal, out-of-order or malformed neighbours (rebalance the column first).
CREATE FUNCTION app.rank_between(low text, high text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    a int[] := app.rank_digits(low);
    b int[] := app.rank_digits(high);
BEGIN
    IF (low IS NOT NULL AND a IS NULL) OR (high IS NOT NULL AND b IS NULL) OR b <= a THEN
        RETURN NULL;
    END IF;
    RETURN app.rank_key(CASE
        WHEN a IS NOT NULL AND b IS NULL THEN coalesce(app.rank_step(a, true), app.rank_midpoint(a, NULL))
        WHEN a IS NULL AND b IS NOT NULL THEN coalesce(app.rank_step(b, false), app.rank_midpoint('{}', b))
        ELSE app.rank_midpoint(coalesce(a, '{}'), b)
    END);
END $$;

-- `n` keys in increasing order, evenly spaced and as short as `n` allows.
CREATE FUNCTION app.rank_evenly(n int) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    width int := 1;
    span bigint := 62;
    keys text[] := '{}';
    value bigint;
    digits int[];
BEGIN
    WHILE span <= n + 1 LOOP
        width := width + 1;
        span := span * 62;
    END LOOP;
    FOR i IN 1..n LOOP
        value := i * span / (n + 1);
        digits := array_fill(0, ARRAY[width]);
        FOR place IN REVERSE width..1 LOOP
            digits[place] := value % 62;
            value := value / 62;
        END LOOP;
        keys := keys || app.rank_key(digits);
    END LOOP;
    RETURN keys;
END $$;

-- Where a card goes in project `project` of `org`: the column (`target`, or the moving card's
-- own) and its key there, right after `after_card`, right before `before_card`, or at the end
-- (the moving card itself left out of its neighbours). No row when the caller may not write
-- tasks here, the moving card is not in the project, or the named neighbour is not a card of that
-- column; the caller says which. Runs with the caller's rights, under RLS.
--
-- Moves and rebalances of one column take its lock first, so each reads its neighbours (in a
-- statement after the lock: a volatile function's statements each see what committed before
-- them) after every earlier one committed: concurrent moves never compute a key from positions
-- a rebalance has just replaced. When the neighbours leave no room (equal keys) or keys got long,
-- the column's other cards get fresh keys in their current order first.
CREATE FUNCTION app.kanban_place(org uuid, project uuid, target text, after_card uuid,
                                 before_card uuid, moving uuid)
RETURNS TABLE (status text, "position" text)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
#variable_conflict use_column
DECLARE
    column_status text := target;
    low text;
    high text;
    key text;
    ids uuid[];
BEGIN
    IF app.org_with_role('member') IS DISTINCT FROM org THEN
        RETURN;
    END IF;
    IF column_status IS NULL THEN
        SELECT m.status INTO column_status FROM public.tasks m
         WHERE m.organization_id = org AND m.project_id = project AND m.id = moving;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('kanban:' || project::text || ':' || column_status, 0));
    FOR attempt IN 1..2 LOOP
        IF after_card IS NOT NULL THEN
            SELECT a.position,
                   (SELECT t.position FROM public.tasks t
                     WHERE t.organization_id = org AND t.project_id = project AND t.status = column_status
                       AND (t.position, t.id) > (a.position, a.id) AND t.id IS DISTINCT FROM moving
                     ORDER BY t.status, t.position, t.id LIMIT 1)
              INTO low, high
              FROM public.tasks a
             WHERE a.organization_id = org AND a.project_id = project AND a.id = after_card
               AND a.id IS DISTINCT FROM moving AND a.status = column_status;
        ELSIF before_card IS NOT NULL THEN
            SELECT (SELECT t.position FROM public.tasks t
                     WHERE t.organization_id = org AND t.project_id = project AND t.status = column_status
                       AND (t.position, t.id) < (b.position, b.id) AND t.id IS DISTINCT FROM moving
                     ORDER BY t.status DESC, t.position DESC, t.id DESC LIMIT 1),
                   b.position
              INTO low, high
              FROM public.tasks b
             WHERE b.organization_id = org AND b.project_id = project AND b.id = before_card
               AND b.id IS DISTINCT FROM moving AND b.status = column_status;
        ELSE
            SELECT (SELECT t.position FROM public.tasks t
                     WHERE t.organization_id = org AND t.project_id = project AND t.status = column_status
                       AND t.id IS DISTINCT FROM moving
                     ORDER BY t.status DESC, t.position DESC, t.id DESC LIMIT 1),
                   NULL
              INTO low, high;
        END IF;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        key := app.rank_between(low, high);
        IF key IS NOT NULL AND (length(key) <= 48 OR attempt = 2) THEN
            status := column_status;
            "position" := key;
            RETURN NEXT;
            RETURN;
        END IF;
        EXIT WHEN attempt = 2;
        -- The moving card is left out: its caller's statement writes it (a row may be written
        -- once per statement), and it gets its own key anyway.
        SELECT array_agg(t.id ORDER BY t.position, t.id) INTO ids FROM public.tasks t
         WHERE t.organization_id = org AND t.project_id = project AND t.status = column_status
           AND t.id IS DISTINCT FROM moving;
        UPDATE public.tasks t SET position = k.key
          FROM unnest(ids, app.rank_evenly(cardinality(ids))) AS k (id, key)
         WHERE t.organization_id = org AND t.id = k.id;
    END LOOP;
    RAISE EXCEPTION 'no kanban key between % and % after a rebalance', low, high;
END $$;

GRANT EXECUTE ON FUNCTION app.rank_digits(text), app.rank_key(int[]), app.rank_midpoint(int[], int[]),
    app.rank_step(int[], boolean), app.rank_between(text, text), app.rank_evenly(int),
    app.kanban_place(uuid, uuid, text, uuid, uuid, uuid) TO tenantry_runtime;
