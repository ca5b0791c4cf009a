-- restoreFiles: a restore may also put the backup's files archive (CELLAR_FILES_DIR, the app's
-- uploads) back. Existing restores restored databases only.
ALTER TABLE restore ADD COLUMN files boolean NOT NULL DEFAULT false;
