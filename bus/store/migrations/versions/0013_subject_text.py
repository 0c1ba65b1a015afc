"""The subject text index (issue 16).

Revision ID: 0013_subject_text
Revises: 0012_document_index
Create Date: 2026-12-06

The console's search for words of the subject is "contains", which no B-tree serves: a
connected system's search for words few documents contain read and folded every subject
it may see (bus.console.views). On SQLite an FTS5 trigram table over the folded subjects
now finds them newest first (bus.store.text_index). It is built here over the documents
there, and ``document_subjects_mark`` set after the newest; later documents are indexed
in batches by serve's and worker's indexer (bus.store.text_indexer), off the accept
path; deletes and updates go through triggers. PostgreSQL gets no text index (measured:
see that module).

Built in the upgrade's transaction: writes to documents wait while it builds (see the
README for the time per million documents); run ``lgsp db upgrade`` at a quiet hour.
"""

from __future__ import annotations

from alembic import op

from bus.store import text_index

revision = '0013_subject_text'
down_revision = '0012_document_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    text_index.create(op.get_bind())


def downgrade() -> None:
    text_index.drop(op.get_bind())
