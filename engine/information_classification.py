"""The information classification of complaint records (policy 11.1).

"All complaint records are classified as Confidential under our ISMS." Every view of
complaint records carries this marking: the case, register and task pages (the
template web/templates/classification_marking.html) and the register's CSV export (a
column on every row and the file name). The words live here only.
"""

from __future__ import annotations

#: The ISMS classification of every complaint record.
CLASSIFICATION = "Confidential"
#: What the marking says beside the label on the pages.
HANDLING_NOTE = ("Complaint records are classified Confidential under our information "
                 "security management system: share them only with people who need them "
                 "to handle the complaint.")
#: The CSV column that carries the classification on every exported row.
CSV_COLUMN = "information_classification"
