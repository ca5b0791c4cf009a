-- Google Drive copies. A backup may ask for a copy on Drive; completing it enqueues an
-- `upload` job in the same transaction, and `locations.drive` follows that copy:
-- pending -> uploading -> available | failed.
ALTER TABLE backup ADD COLUMN upload_to_drive boolean NOT NULL DEFAULT false;
