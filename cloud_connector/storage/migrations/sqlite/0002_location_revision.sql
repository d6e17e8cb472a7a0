-- sites.revision: a counter bumped by every write that can change the site's OCPI Location, whoever makes
-- it (the service or an admin command in another process): the key of the serialized-Location cache of
-- the locations pages. Kept by triggers, so no code path can forget it. connectors.ocpp_status is not
-- part of a Location (the EVSE status is): it does not count.

ALTER TABLE sites ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER sites_revision AFTER UPDATE OF id, country_code, party_id, name, publish, info, last_updated ON sites
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER evses_revision_insert AFTER INSERT ON evses
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = NEW.site_id;
END;

CREATE TRIGGER evses_revision_update AFTER UPDATE ON evses
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id IN (OLD.site_id, NEW.site_id);
END;

CREATE TRIGGER evses_revision_delete AFTER DELETE ON evses
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = OLD.site_id;
END;

CREATE TRIGGER connectors_revision_insert AFTER INSERT ON connectors
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = (SELECT site_id FROM evses WHERE uid = NEW.evse_uid);
END;

CREATE TRIGGER connectors_revision_update AFTER UPDATE OF evse_uid, connector_id, standard, format, power_type,
    max_voltage, max_amperage, max_electric_power, last_updated ON connectors
BEGIN
    UPDATE sites SET revision = revision + 1
    WHERE id IN (SELECT site_id FROM evses WHERE uid IN (OLD.evse_uid, NEW.evse_uid));
END;

CREATE TRIGGER connectors_revision_delete AFTER DELETE ON connectors
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = (SELECT site_id FROM evses WHERE uid = OLD.evse_uid);
END;

CREATE TRIGGER tariff_assignments_revision_insert AFTER INSERT ON tariff_assignments
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = NEW.site_id;
END;

CREATE TRIGGER tariff_assignments_revision_update AFTER UPDATE ON tariff_assignments
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id IN (OLD.site_id, NEW.site_id);
END;

CREATE TRIGGER tariff_assignments_revision_delete AFTER DELETE ON tariff_assignments
BEGIN
    UPDATE sites SET revision = revision + 1 WHERE id = OLD.site_id;
END;

-- A Location lists the ids of its live tariffs only.
CREATE TRIGGER tariffs_revision AFTER UPDATE OF id, deleted ON tariffs
WHEN OLD.id IS NOT NEW.id OR OLD.deleted IS NOT NEW.deleted
BEGIN
    UPDATE sites SET revision = revision + 1
    WHERE id IN (SELECT site_id FROM tariff_assignments WHERE tariff_id IN (OLD.id, NEW.id));
END;
