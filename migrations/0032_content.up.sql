-- Strive content (seed 004, CONTENT): an organization's pages, blog posts, documentation and
-- templates, written in Markdown, published on its public site.
--
-- Who may do what is the policies' (not only the API's):
-- * viewers read everything of their organization; members write drafts;
-- * publishing, unpublishing, archiving, scheduling, and changing anything not a plain draft
--   need an editor: an admin or owner, or a member granted `content.publish` in
--   organization_members.permissions ({"content.publish": true}) — app.may_publish_content();
-- * a public reader (bound by the organization's slug, migration 0031) sees published rows and
--   the redirects that lead to them, nothing else.
-- Every published version is kept (content_versions, written by the database); a changed slug
-- keeps redirecting (content_redirects); published_at is set by the database on first publish.

-- A slug from a title: accents dropped, lowercase, runs of anything else one hyphen.
CREATE FUNCTION app.slugify(title text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(trim(BOTH '-' FROM left(regexp_replace(
               regexp_replace(normalize(lower(title), NFKD), '[\u0300-\u036f]', '', 'g'),
               '[^a-z0-9]+', '-', 'g'), 80)), ''), 'untitled')
$$;

-- SEO metadata: only these keys, each a string of bounded length; URLs http(s) without spaces.
CREATE FUNCTION app.seo_meta_valid(meta jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(meta) = 'object'
       AND NOT EXISTS (
           SELECT FROM jsonb_each(meta) e
            WHERE e.key NOT IN ('title', 'description', 'canonical_url', 'image')
               OR jsonb_typeof(e.value) <> 'string'
               OR length(e.value #>> '{}') > CASE e.key WHEN 'title' THEN 200 WHEN 'description' THEN 500 ELSE 2048 END
               OR (e.key IN ('canonical_url', 'image') AND (e.value #>> '{}') !~ '^https?://[^[:space:]]+$'))
$$;

GRANT EXECUTE ON FUNCTION app.slugify(text), app.seo_meta_valid(jsonb) TO tenantry_runtime;

CREATE TABLE content (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    -- Unique in the organization: the public address is /{org_slug}/content/{slug}.
    slug            text NOT NULL CHECK (length(slug) <= 100 AND slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    content_type    text NOT NULL DEFAULT 'page'
                    CHECK (content_type IN ('page', 'blog_post', 'documentation', 'template')),
    -- Markdown.
    content         text NOT NULL DEFAULT '' CHECK (length(content) <= 500000),
    excerpt         text CHECK (length(excerpt) <= 2000),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    -- A member; cleared if they leave, so the page stays.
    author_id       uuid,
    -- Set by the database when first published; never cleared.
    published_at    timestamptz,
    -- A draft to be published then (a job); cleared when published.
    publish_at      timestamptz,
    seo_meta        jsonb NOT NULL DEFAULT '{}' CONSTRAINT content_seo_meta CHECK (app.seo_meta_valid(seo_meta)),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT content_slug UNIQUE (organization_id, slug),
    CONSTRAINT content_scheduled_draft CHECK (publish_at IS NULL OR status = 'draft'),
    CONSTRAINT content_author FOREIGN KEY (organization_id, author_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (author_id)
);
-- The public site's lists: one type's rows, newest published first (not partial: the public
-- queries leave the status to the policy, which the planner cannot match to a partial index).
CREATE INDEX content_by_published ON content (organization_id, content_type, published_at DESC, id DESC);

-- Old slugs that still lead to their page (301 on the public site).
CREATE TABLE content_redirects (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    slug            text NOT NULL,
    content_id      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, slug),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, content_id) REFERENCES content (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX content_redirects_target ON content_redirects (organization_id, content_id);

-- Every published version, numbered from 1 per page.
CREATE TABLE content_versions (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    content_id      uuid NOT NULL,
    version         integer NOT NULL CHECK (version > 0),
    title           text NOT NULL,
    slug            text NOT NULL,
    content_type    text NOT NULL,
    content         text NOT NULL,
    excerpt         text,
    seo_meta        jsonb NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    published_by    uuid,
    PRIMARY KEY (organization_id, content_id, version),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, content_id) REFERENCES content (organization_id, id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------------------------------------
-- Who may publish in the bound organization: an admin or owner (or an API key with that
-- role), or a member granted `content.publish`. Viewers never.
CREATE FUNCTION app.may_publish_content() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.org_id IS NULL OR c.org_role IS NULL THEN
        RETURN false;
    ELSIF app.role_rank(c.org_role) >= app.role_rank('admin') THEN
        RETURN true;
    ELSIF c.org_role <> 'member' OR c.user_id IS NULL THEN
        RETURN false;
    END IF;
    RETURN coalesce((SELECT m.permissions @> '{"content.publish": true}'
                       FROM public.organization_members m
                      WHERE m.organization_id = c.org_id AND m.user_id = c.user_id), false);
END $$;
GRANT EXECUTE ON FUNCTION app.may_publish_content() TO tenantry_runtime;

-- The organization of a public reader: a request bound to an organization with no user, API
-- key, calendar feed or service behind it (migration 0031); NULL for anyone else, so members
-- and other tenants' users never reach rows through the public policies.
CREATE FUNCTION app.public_org() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.user_id IS NULL AND c.api_key_id IS NULL AND c.calendar_of IS NULL AND c.service IS NOT TRUE THEN
        RETURN c.org_id;
    END IF;
    RETURN NULL;
END $$;
GRANT EXECUTE ON FUNCTION app.public_org() TO tenantry_runtime;

ALTER TABLE content ENABLE ROW LEVEL SECURITY;
ALTER TABLE content FORCE ROW LEVEL SECURITY;
CREATE POLICY content_select ON content FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
-- Published rows are public: a public reader of the organization reads them.
CREATE POLICY content_public ON content FOR SELECT
    USING (status = 'published' AND organization_id = (SELECT app.public_org()));
-- Members touch plain drafts (not published, archived or scheduled ones); editors anything.
CREATE POLICY content_insert ON content FOR INSERT
    WITH CHECK (organization_id = (SELECT app.org_with_role('member'))
                AND ((status = 'draft' AND publish_at IS NULL) OR (SELECT app.may_publish_content())));
CREATE POLICY content_update ON content FOR UPDATE
    USING (organization_id = (SELECT app.org_with_role('member'))
           AND ((status = 'draft' AND publish_at IS NULL) OR (SELECT app.may_publish_content())))
    WITH CHECK (organization_id = (SELECT app.org_with_role('member'))
                AND ((status = 'draft' AND publish_at IS NULL) OR (SELECT app.may_publish_content())));
CREATE POLICY content_delete ON content FOR DELETE
    USING (organization_id = (SELECT app.org_with_role('member'))
           AND ((status = 'draft' AND publish_at IS NULL) OR (SELECT app.may_publish_content())));
GRANT SELECT,
      INSERT (id, organization_id, title, slug, content_type, content, excerpt, status, author_id,
              publish_at, seo_meta),
      UPDATE (title, slug, content_type, content, excerpt, status, author_id, publish_at, seo_meta),
      DELETE
   ON content TO tenantry_runtime;

-- Redirects and versions are written by the database only (the triggers below).
ALTER TABLE content_redirects ENABLE ROW LEVEL SECURITY;
ALTER TABLE content_redirects FORCE ROW LEVEL SECURITY;
CREATE POLICY content_redirects_select ON content_redirects FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
-- A public reader follows a redirect only to a page it can read (published).
CREATE POLICY content_redirects_public ON content_redirects FOR SELECT
    USING (organization_id = (SELECT app.public_org())
           AND EXISTS (SELECT FROM content c
                        WHERE c.organization_id = content_redirects.organization_id
                          AND c.id = content_redirects.content_id AND c.status = 'published'));
GRANT SELECT ON content_redirects TO tenantry_runtime;

ALTER TABLE content_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE content_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY content_versions_select ON content_versions FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON content_versions TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- Before a write: a missing slug from the title (the first free one: `about`, `about-2`, …),
-- published_at on first publish, and no schedule on what is not a draft.
CREATE FUNCTION app.prepare_content() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    base text;
    n integer := 1;
BEGIN
    IF NEW.slug IS NULL THEN
        base := app.slugify(NEW.title);
        NEW.slug := base;
        WHILE EXISTS (SELECT FROM public.content c
                       WHERE c.organization_id = NEW.organization_id AND c.slug = NEW.slug) LOOP
            n := n + 1;
            NEW.slug := left(base, 80) || '-' || n;
        END LOOP;
    END IF;
    IF NEW.status = 'published' THEN
        NEW.publish_at := NULL;
        IF NEW.published_at IS NULL THEN
            NEW.published_at := now();
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER prepare BEFORE INSERT OR UPDATE ON content
    FOR EACH ROW EXECUTE FUNCTION app.prepare_content();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON content
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- After a write: a slug taken by a page stops redirecting; a slug left behind redirects to its
-- page; a published change becomes a version; a schedule becomes (or stops being) a job acting
-- for whoever set it.
CREATE FUNCTION app.content_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_slug text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.slug END;
    was_published boolean := TG_OP = 'UPDATE' AND OLD.status = 'published';
BEGIN
    IF NEW.slug IS DISTINCT FROM old_slug THEN
        DELETE FROM public.content_redirects r
         WHERE r.organization_id = NEW.organization_id AND r.slug = NEW.slug;
        IF old_slug IS NOT NULL THEN
            INSERT INTO public.content_redirects (organization_id, slug, content_id)
            VALUES (NEW.organization_id, old_slug, NEW.id)
            ON CONFLICT (organization_id, slug) DO UPDATE SET content_id = EXCLUDED.content_id;
        END IF;
    END IF;
    IF NEW.status = 'published' AND (NOT was_published
            OR (NEW.title, NEW.slug, NEW.content_type, NEW.content, NEW.excerpt, NEW.seo_meta)
               IS DISTINCT FROM (OLD.title, OLD.slug, OLD.content_type, OLD.content, OLD.excerpt, OLD.seo_meta)) THEN
        INSERT INTO public.content_versions (organization_id, content_id, version, title, slug,
                                             content_type, content, excerpt, seo_meta, published_by)
        SELECT NEW.organization_id, NEW.id, coalesce(max(v.version), 0) + 1, NEW.title, NEW.slug,
               NEW.content_type, NEW.content, NEW.excerpt, NEW.seo_meta, app.user_id()
          FROM public.content_versions v
         WHERE v.organization_id = NEW.organization_id AND v.content_id = NEW.id;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.publish_at IS DISTINCT FROM OLD.publish_at THEN
        DELETE FROM queue.jobs j
         WHERE j.kind = 'content.publish' AND j.organization_id = NEW.organization_id
           AND j.unique_key = NEW.id::text AND j.state = 'queued';
        IF NEW.publish_at IS NOT NULL THEN
            INSERT INTO queue.jobs (kind, organization_id, actor_id, payload, unique_key, run_at, max_attempts)
            VALUES ('content.publish', NEW.organization_id, app.user_id(),
                    jsonb_build_object('content_id', NEW.id, 'publish_at', NEW.publish_at),
                    NEW.id::text, NEW.publish_at, 10)
            ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER changed AFTER INSERT OR UPDATE ON content
    FOR EACH ROW EXECUTE FUNCTION app.content_changed();

CALL audit.attach('content');
CALL audit.attach('content_redirects');
CALL audit.attach('content_versions', 'organization_id', 'id', '{}', 'summary');
