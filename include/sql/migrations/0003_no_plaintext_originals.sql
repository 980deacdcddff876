-- No plaintext original is ever written: exports are encrypted when staged, or their original
-- is not kept at all. Clear what older versions left in staging, then drop the column.
UPDATE zuora.staging_exports SET original_json = NULL WHERE original_json IS NOT NULL;
ALTER TABLE zuora.staging_exports DROP COLUMN original_json;
