-- Strive CRM (seed 004): customers with per-organization custom fields, projects, and tasks with
-- subtasks and a kanban order. Every reference stays inside one organization (composite keys);
-- the people referenced are members of it (a key to the membership), and when someone leaves,
-- only the person column is cleared (ON DELETE SET NULL (column)): nothing dangles, nothing is
-- deleted.

-- Trigram search over names, emails and companies, and GIN indexes that start with the
-- organization (both ship with PostgreSQL and are trusted: the database's owner may create them).
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;

-- ---------------------------------------------------------------------------------------------
-- Custom fields: what an organization's customers may carry in custom_fields, defined by admins.
CREATE TABLE customer_fields (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label           text NOT NULL CHECK (length(btrim(label)) BETWEEN 1 AND 100),
    kind            text NOT NULL CHECK (kind IN ('text', 'number', 'date', 'boolean', 'option')),
    -- The allowed values of an `option` field (and only of one).
    options         text[] CHECK (cardinality(options) BETWEEN 1 AND 100
                                  AND array_position(options, NULL) IS NULL),
    required        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT customer_fields_key UNIQUE (organization_id, key),
    CONSTRAINT customer_fields_options CHECK ((kind = 'option') = (options IS NOT NULL))
);

CREATE TABLE customers (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    email           text CHECK (length(email) <= 254),
    phone           text CHECK (length(phone) <= 50),
    company         text CHECK (length(company) <= 200),
    status          text NOT NULL DEFAULT 'lead' CHECK (status IN ('lead', 'prospect', 'active', 'churned')),
    source          text NOT NULL DEFAULT 'other'
                    CHECK (source IN ('website', 'referral', 'social', 'email', 'other')),
    tags            text[] NOT NULL DEFAULT '{}'
                    CHECK (cardinality(tags) <= 50 AND array_position(tags, NULL) IS NULL),
    custom_fields   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    assigned_to     uuid,
    -- What free-text search matches (trigram index below).
    search_text     text NOT NULL GENERATED ALWAYS AS
                    (lower(name || ' ' || coalesce(email, '') || ' ' || coalesce(company, ''))) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT customers_assignee FOREIGN KEY (organization_id, assigned_to)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (assigned_to)
);
-- One customer per email in an organization, whatever its case.
CREATE UNIQUE INDEX customers_email ON customers (organization_id, lower(email)) WHERE email IS NOT NULL;
-- The list's three orders (cursor pagination: the sort key, then id).
CREATE INDEX customers_by_name ON customers (organization_id, name, id);
CREATE INDEX customers_by_created ON customers (organization_id, created_at, id);
CREATE INDEX customers_by_updated ON customers (organization_id, updated_at, id);
CREATE INDEX customers_by_assignee ON customers (organization_id, assigned_to) WHERE assigned_to IS NOT NULL;
-- Search and the free-form filters in one GIN index that starts with the organization: a
-- trigram index alone answers a common word with its matches in every organization (tens of
-- thousands of rows at 2 million customers, 85 ms); with the organization and the tags beside
-- it, the scan intersects them and reads only this organization's candidates (7 ms).
CREATE INDEX customers_search ON customers
    USING gin (organization_id, search_text gin_trgm_ops, tags, custom_fields);

-- What is wrong with `custom` as the custom fields of a customer of `org`: the first key at fault
-- and why, or no row. Custom fields hold only defined keys, each of its kind; required ones are
-- present. Shared by the trigger below and by imports, which name the row.
CREATE FUNCTION app.custom_fields_problem(org uuid, custom jsonb, OUT key text, OUT message text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE AS $$
DECLARE
    field record;
    value jsonb;
    fits boolean;
BEGIN
    SELECT k INTO key FROM jsonb_object_keys(custom) k
     WHERE NOT EXISTS (SELECT FROM public.customer_fields d WHERE d.organization_id = org AND d.key = k)
     ORDER BY k LIMIT 1;
    IF key IS NOT NULL THEN
        message := format('no custom field %s is defined in this organization', key);
        RETURN NEXT;
        RETURN;
    END IF;
    FOR field IN SELECT d.key, d.kind, d.options, d.required FROM public.customer_fields d
                  WHERE d.organization_id = org ORDER BY d.key LOOP
        value := custom -> field.key;
        IF value IS NULL OR value = 'null' THEN
            IF field.required THEN
                key := field.key;
                message := format('custom field %s is required', field.key);
                RETURN NEXT;
                RETURN;
            END IF;
            CONTINUE;
        END IF;
        fits := CASE field.kind
            WHEN 'text' THEN jsonb_typeof(value) = 'string' AND length(value #>> '{}') <= 1000
            WHEN 'number' THEN jsonb_typeof(value) = 'number'
            WHEN 'boolean' THEN jsonb_typeof(value) = 'boolean'
            WHEN 'option' THEN jsonb_typeof(value) = 'string' AND (value #>> '{}') = ANY (field.options)
            WHEN 'date' THEN jsonb_typeof(value) = 'string' AND (value #>> '{}') ~ '^\d{4}-\d{2}-\d{2}$'
        END;
        IF fits AND field.kind = 'date' THEN
            BEGIN
                PERFORM (value #>> '{}')::date;
            EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
                fits := false;
            END;
        END IF;
        IF NOT fits THEN
            key := field.key;
            message := format('custom field %s must be %s', field.key, CASE field.kind
                    WHEN 'text' THEN 'text of at most 1000 characters'
                    WHEN 'number' THEN 'a number'
                    WHEN 'boolean' THEN 'true or false'
                    WHEN 'option' THEN 'one of ' || array_to_string(field.options, ', ')
                    ELSE 'a date (YYYY-MM-DD)' END);
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION app.custom_fields_problem(uuid, jsonb) TO tenantry_runtime;

-- The field a violation names is `custom_fields.<key>` (the error's column).
CREATE FUNCTION app.check_custom_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem record;
BEGIN
    SELECT * INTO problem FROM app.custom_fields_problem(NEW.organization_id, NEW.custom_fields);
    IF problem.key IS NOT NULL THEN
        RAISE EXCEPTION '%', problem.message
            USING ERRCODE = 'check_violation', COLUMN = 'custom_fields.' || problem.key;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_custom_fields BEFORE INSERT ON customers
    FOR EACH ROW EXECUTE FUNCTION app.check_custom_fields();
-- A field made required applies to customers whose custom fields are written from then on.
CREATE TRIGGER check_custom_fields_update BEFORE UPDATE OF custom_fields ON customers
    FOR EACH ROW WHEN (NEW.custom_fields IS DISTINCT FROM OLD.custom_fields)
    EXECUTE FUNCTION app.check_custom_fields();

-- A definition is not removed, nor an option taken away, while customers hold values it allows:
-- the caller clears those values first (saying so), so nothing is lost by accident.
CREATE FUNCTION app.keep_used_custom_fields() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The organization itself is going (its customers go with it).
    IF NOT EXISTS (SELECT FROM public.organizations o WHERE o.id = OLD.organization_id) THEN
        RETURN OLD;
    END IF;
    IF EXISTS (SELECT FROM public.customers c
                WHERE c.organization_id = OLD.organization_id
                  AND c.custom_fields ? OLD.key AND c.custom_fields -> OLD.key <> 'null'
                  AND (TG_OP = 'DELETE' OR NOT (c.custom_fields ->> OLD.key) = ANY (NEW.options))) THEN
        RAISE EXCEPTION 'customers hold values of custom field %', OLD.key
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'customer_fields_in_use';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER keep_used_custom_fields_delete BEFORE DELETE ON customer_fields
    FOR EACH ROW EXECUTE FUNCTION app.keep_used_custom_fields();
CREATE TRIGGER keep_used_custom_fields_options BEFORE UPDATE OF options ON customer_fields
    FOR EACH ROW WHEN (OLD.kind = 'option' AND NOT (NEW.options @> OLD.options))
    EXECUTE FUNCTION app.keep_used_custom_fields();

-- ---------------------------------------------------------------------------------------------
CREATE TABLE projects (
    id                  uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id         uuid,
    name                text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description         text CHECK (length(description) <= 10000),
    status              text NOT NULL DEFAULT 'planning'
                        CHECK (status IN ('planning', 'active', 'on_hold', 'completed', 'cancelled')),
    priority            text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    start_date          date,
    due_date            date,
    -- Set by the database when the status becomes completed, cleared when reopened.
    completion_date     date,
    -- Money: exact, never a float.
    budget              numeric(14, 2) CHECK (budget >= 0),
    -- Set by hand; NULL: derived from the tasks.
    progress_manual     integer CHECK (progress_manual BETWEEN 0 AND 100),
    -- Kept by the database from the tasks: the estimated hours (1 for a task without an
    -- estimate) of the tasks that are not cancelled, and of those done.
    task_weight_total   numeric NOT NULL DEFAULT 0,
    task_weight_done    numeric NOT NULL DEFAULT 0,
    progress_percentage integer NOT NULL GENERATED ALWAYS AS (coalesce(progress_manual,
                            CASE WHEN task_weight_total > 0
                                 THEN floor(100 * task_weight_done / task_weight_total)::integer
                                 ELSE 0 END)) STORED,
    project_manager_id  uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT projects_dates CHECK (due_date >= start_date),
    CHECK ((status = 'completed') = (completion_date IS NOT NULL)),
    CONSTRAINT projects_customer FOREIGN KEY (organization_id, customer_id)
        REFERENCES customers (organization_id, id) ON DELETE SET NULL (customer_id),
    CONSTRAINT projects_manager FOREIGN KEY (organization_id, project_manager_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (project_manager_id)
);
CREATE INDEX projects_by_customer ON projects (organization_id, customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX projects_by_manager ON projects (organization_id, project_manager_id) WHERE project_manager_id IS NOT NULL;

CREATE FUNCTION app.project_completion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'completed' AND (TG_OP = 'INSERT' OR OLD.status <> 'completed') THEN
        NEW.completion_date := current_date;
    ELSIF NEW.status <> 'completed' THEN
        NEW.completion_date := NULL;
    ELSE
        NEW.completion_date := OLD.completion_date;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER project_completion BEFORE INSERT OR UPDATE OF status ON projects
    FOR EACH ROW EXECUTE FUNCTION app.project_completion();

-- ---------------------------------------------------------------------------------------------
CREATE TABLE tasks (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    project_id      uuid NOT NULL,
    -- A subtask's parent: a task of the same project (the key says so).
    parent_task_id  uuid,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    description     text CHECK (length(description) <= 20000),
    status          text NOT NULL DEFAULT 'todo'
                    CHECK (status IN ('todo', 'in_progress', 'review', 'done', 'cancelled')),
    priority        text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    assigned_to     uuid,
    -- The actor who created it, set by the database.
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    due_date        timestamptz,
    estimated_hours numeric(8, 2) CHECK (estimated_hours >= 0),
    actual_hours    numeric(8, 2) CHECK (actual_hours >= 0),
    tags            text[] NOT NULL DEFAULT '{}'
                    CHECK (cardinality(tags) <= 50 AND array_position(tags, NULL) IS NULL),
    -- Kanban order within (project, status): a fractional key in base 62 (digits, then upper,
    -- then lower case letters, compared bytewise), never ending in its zero digit, so that a key
    -- between any two exists; equal keys (two moves to the same place at once) are ordered by id.
    position        text COLLATE "C" NOT NULL
                    CHECK (position ~ '^[0-9A-Za-z]*[1-9A-Za-z]$' AND length(position) <= 128),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, project_id, id),
    CONSTRAINT tasks_project FOREIGN KEY (organization_id, project_id)
        REFERENCES projects (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT tasks_parent FOREIGN KEY (organization_id, project_id, parent_task_id)
        REFERENCES tasks (organization_id, project_id, id) ON DELETE CASCADE,
    CONSTRAINT tasks_assignee FOREIGN KEY (organization_id, assigned_to)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (assigned_to),
    CONSTRAINT tasks_not_own_parent CHECK (parent_task_id <> id)
);
-- The board: a project's columns in order.
CREATE INDEX tasks_board ON tasks (organization_id, project_id, status, position, id);
-- "My tasks" (seed: tasks.status + tasks.assigned_to), by due date.
CREATE INDEX tasks_by_assignee ON tasks (organization_id, assigned_to, status, due_date, id) WHERE assigned_to IS NOT NULL;
CREATE INDEX tasks_by_parent ON tasks (organization_id, project_id, parent_task_id) WHERE parent_task_id IS NOT NULL;
-- A project belongs to one organization: without this, "organization X and project Y" is
-- estimated at a handful of rows, and a 5,000-card column is read whole to find one neighbour.
CREATE STATISTICS tasks_project_org (dependencies) ON organization_id, project_id FROM tasks;

-- The creator is the actor, whatever the client sent.
CREATE FUNCTION app.stamp_task_creator() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_by := app.user_id();
    RETURN NEW;
END $$;
CREATE TRIGGER stamp_task_creator BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION app.stamp_task_creator();

-- No cycle of subtasks: the new parent must not be the task or one of its descendants. Re-parenting
-- within a project is serialized (a transaction-scoped advisory lock), so two concurrent moves
-- cannot close a cycle that neither saw.
CREATE FUNCTION app.refuse_task_cycle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('tasks_parent:' || NEW.project_id::text, 0));
    IF EXISTS (WITH RECURSIVE ancestors (id, depth) AS (
                   SELECT NEW.parent_task_id, 1
                   UNION ALL
                   SELECT t.parent_task_id, a.depth + 1
                     FROM ancestors a
                     JOIN public.tasks t ON t.organization_id = NEW.organization_id AND t.id = a.id
                    WHERE t.parent_task_id IS NOT NULL AND a.depth < 1000)
               SELECT FROM ancestors WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'a task cannot be a subtask of itself or of its own subtasks'
            USING ERRCODE = 'check_violation', COLUMN = 'parent_task_id';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_task_cycle BEFORE UPDATE OF parent_task_id ON tasks
    FOR EACH ROW WHEN (NEW.parent_task_id IS NOT NULL AND NEW.parent_task_id IS DISTINCT FROM OLD.parent_task_id)
    EXECUTE FUNCTION app.refuse_task_cycle();

-- A project's task weights follow its tasks, by difference (O(1) per changed task; a move within
-- or between open columns changes nothing). SECURITY DEFINER: members cannot write the weights;
-- the project is the changed task's own (its organization and key come from the row).
CREATE FUNCTION app.sync_task_weights() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    total numeric := 0;
    done numeric := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'cancelled' THEN
        total := total - coalesce(OLD.estimated_hours, 1);
        done := done - CASE WHEN OLD.status = 'done' THEN coalesce(OLD.estimated_hours, 1) ELSE 0 END;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status <> 'cancelled' THEN
        total := total + coalesce(NEW.estimated_hours, 1);
        done := done + CASE WHEN NEW.status = 'done' THEN coalesce(NEW.estimated_hours, 1) ELSE 0 END;
    END IF;
    IF total <> 0 OR done <> 0 THEN
        UPDATE public.projects p
           SET task_weight_total = p.task_weight_total + total, task_weight_done = p.task_weight_done + done
         WHERE p.organization_id = coalesce(NEW.organization_id, OLD.organization_id)
           AND p.id = coalesce(NEW.project_id, OLD.project_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_task_weights AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION app.sync_task_weights();
CREATE TRIGGER sync_task_weights_update AFTER UPDATE OF status, estimated_hours ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.estimated_hours IS DISTINCT FROM NEW.estimated_hours)
    EXECUTE FUNCTION app.sync_task_weights();

CREATE TRIGGER touch_updated_at BEFORE UPDATE ON customer_fields FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Viewers read, members write, admins delete; admins define the custom fields.
CALL app.protect_tenant_table('customer_fields', 'viewer', 'admin', 'admin');
CALL app.protect_tenant_table('customers', 'viewer', 'member', 'admin');
CALL app.protect_tenant_table('projects', 'viewer', 'member', 'admin');
CALL app.protect_tenant_table('tasks', 'viewer', 'member', 'admin');

-- Keys never change; derived columns are the database's.
GRANT SELECT, INSERT (id, organization_id, key, label, kind, options, required),
      UPDATE (label, options, required), DELETE
   ON customer_fields TO tenantry_runtime;
GRANT SELECT,
      INSERT (id, organization_id, name, email, phone, company, status, source, tags, custom_fields, assigned_to),
      UPDATE (name, email, phone, company, status, source, tags, custom_fields, assigned_to),
      DELETE
   ON customers TO tenantry_runtime;
GRANT SELECT,
      INSERT (id, organization_id, customer_id, name, description, status, priority, start_date, due_date,
              budget, progress_manual, project_manager_id),
      UPDATE (customer_id, name, description, status, priority, start_date, due_date, budget,
              progress_manual, project_manager_id),
      DELETE
   ON projects TO tenantry_runtime;
GRANT SELECT,
      INSERT (id, organization_id, project_id, parent_task_id, title, description, status, priority,
              assigned_to, due_date, estimated_hours, actual_hours, tags, position),
      UPDATE (parent_task_id, title, description, status, priority, assigned_to, due_date,
              estimated_hours, actual_hours, tags, position),
      DELETE
   ON tasks TO tenantry_runtime;

CALL audit.attach('customer_fields');
CALL audit.attach('customers');
CALL audit.attach('projects');
CALL audit.attach('tasks');
