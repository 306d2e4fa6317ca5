"""Set-based SQL that derives what each department reads from the events rows."""
