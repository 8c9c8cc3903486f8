-- Custom fields: numbers that come back as they were given, and values that can be cleared.
--
-- A number custom field holds at most 15 significant digits (what a double keeps: clients and
-- the CSV export read numbers as doubles). Taking values away (a field's values cleared before
-- its deletion, a value set to null) no longer demands every other required field: only a
-- required field's own value cannot be taken away.

CREATE OR REPLACE FUNCTION app.custom_fields_problem(org uuid, custom jsonb, OUT key text, OUT message text)
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
        -- Numbers are kept as given but read by clients as doubles: a number with more than 15
        -- significant digits (or beyond a double's range) would come back changed.
        IF fits AND field.kind = 'number' THEN
            BEGIN
                fits := (value #>> '{}')::numeric = (value #>> '{}')::float8::numeric;
            EXCEPTION WHEN numeric_value_out_of_range THEN
                fits := false;
            END;
        END IF;
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
                    WHEN 'number' THEN 'a number of at most 15 significant digits'
                    WHEN 'boolean' THEN 'true or false'
                    WHEN 'option' THEN 'one of ' || array_to_string(field.options, ', ')
                    ELSE 'a date (YYYY-MM-DD)' END);
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION app.check_custom_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem record;
    removed text;
BEGIN
    -- Values only taken away: refused only when one of them is required. A field made required
    -- later is demanded when values are added or changed, not when others are removed (clearing
    -- a field's values before its deletion would otherwise need every other required field).
    IF TG_OP = 'UPDATE' AND OLD.custom_fields @> NEW.custom_fields THEN
        SELECT d.key INTO removed FROM public.customer_fields d
         WHERE d.organization_id = NEW.organization_id AND d.required
           AND OLD.custom_fields ? d.key AND NOT NEW.custom_fields ? d.key
         ORDER BY d.key LIMIT 1;
        IF removed IS NOT NULL THEN
            RAISE EXCEPTION 'custom field % is required', removed
                USING ERRCODE = 'check_violation', COLUMN = 'custom_fields.' || removed;
        END IF;
        RETURN NEW;
    END IF;
    SELECT * INTO problem FROM app.custom_fields_problem(NEW.organization_id, NEW.custom_fields);
    IF problem.key IS NOT NULL THEN
        RAISE EXCEPTION '%', problem.message
            USING ERRCODE = 'check_violation', COLUMN = 'custom_fields.' || problem.key;
    END IF;
    RETURN NEW;
END $$;
