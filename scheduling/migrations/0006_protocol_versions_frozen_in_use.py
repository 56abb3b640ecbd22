"""A protocol version that governs a treatment series cannot change (PostgreSQL triggers).

Series are booked and re-validated against their version, and the planner caches a version's
rules per process (protocols.selectors.version_spec): a step, role or rule added, edited or
removed under a series would change what its booked sessions must satisfy without anyone
re-checking them, and other processes would go on planning with the old rules. A change is a new
version (POST /api/v1/protocols/). Versions no series uses yet stay editable. The trigger lives
here, not in protocols/, because it reads scheduling's series table. SQLite (the embedded default)
has no such guard, like the audit table's append-only trigger.
"""

from django.db import migrations

from clinic.db import postgresql_only

FROZEN = """
CREATE FUNCTION protocols_version_in_use(version bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM scheduling_treatmentseries WHERE protocol_version_id = version)
$$;

CREATE FUNCTION protocols_refuse_change_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb[] := ARRAY[]::jsonb[];
    row_ jsonb;
    vid bigint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        changed := changed || to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        changed := changed || to_jsonb(NEW);
    END IF;
    FOREACH row_ IN ARRAY changed LOOP
        vid := CASE TG_TABLE_NAME
            WHEN 'protocols_protocolsteprole' THEN (
                SELECT s.version_id FROM protocols_protocolstep s
                WHERE s.id = (row_->>'step_id')::bigint
            )
            WHEN 'protocols_protocolversion' THEN (row_->>'id')::bigint
            ELSE (row_->>'version_id')::bigint
        END;
        IF protocols_version_in_use(vid) THEN
            RAISE EXCEPTION '% on % refused: protocol version % governs a treatment series (make a new version)',
                TG_OP, TG_TABLE_NAME, vid
                USING ERRCODE = 'restrict_violation';
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER protocols_protocolstep_frozen_in_use
    BEFORE INSERT OR UPDATE OR DELETE ON protocols_protocolstep
    FOR EACH ROW EXECUTE FUNCTION protocols_refuse_change_in_use();
CREATE TRIGGER protocols_protocolsteprole_frozen_in_use
    BEFORE INSERT OR UPDATE OR DELETE ON protocols_protocolsteprole
    FOR EACH ROW EXECUTE FUNCTION protocols_refuse_change_in_use();
CREATE TRIGGER protocols_protocolrule_frozen_in_use
    BEFORE INSERT OR UPDATE OR DELETE ON protocols_protocolrule
    FOR EACH ROW EXECUTE FUNCTION protocols_refuse_change_in_use();
CREATE TRIGGER protocols_protocolversion_frozen_in_use
    BEFORE UPDATE OF protocol_id, version ON protocols_protocolversion
    FOR EACH ROW EXECUTE FUNCTION protocols_refuse_change_in_use();

CREATE FUNCTION protocols_refuse_care_model_change_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.care_model IS DISTINCT FROM OLD.care_model AND EXISTS (
        SELECT 1 FROM protocols_protocolversion v
        WHERE v.protocol_id = OLD.id AND protocols_version_in_use(v.id)
    ) THEN
        RAISE EXCEPTION 'care_model change refused: a version of protocol % governs a treatment series',
            OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER protocols_protocol_care_model_frozen_in_use
    BEFORE UPDATE OF care_model ON protocols_protocol
    FOR EACH ROW EXECUTE FUNCTION protocols_refuse_care_model_change_in_use();
"""

FROZEN_REVERSE = """
DROP TRIGGER IF EXISTS protocols_protocol_care_model_frozen_in_use ON protocols_protocol;
DROP FUNCTION IF EXISTS protocols_refuse_care_model_change_in_use();
DROP TRIGGER IF EXISTS protocols_protocolversion_frozen_in_use ON protocols_protocolversion;
DROP TRIGGER IF EXISTS protocols_protocolrule_frozen_in_use ON protocols_protocolrule;
DROP TRIGGER IF EXISTS protocols_protocolsteprole_frozen_in_use ON protocols_protocolsteprole;
DROP TRIGGER IF EXISTS protocols_protocolstep_frozen_in_use ON protocols_protocolstep;
DROP FUNCTION IF EXISTS protocols_refuse_change_in_use();
DROP FUNCTION IF EXISTS protocols_version_in_use(bigint);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("protocols", "0001_protocol_versions_steps_rules"),
        ("scheduling", "0005_holds_last_at_most_a_day"),
    ]

    operations = [postgresql_only(FROZEN, FROZEN_REVERSE)]
