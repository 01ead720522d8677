"""Price sources of the GPU-hour index. Each turns one feed into `Quote`s plus an honest
count of the rows it could not use (`SourceResult`):

- `parse_snapshot` (`marketplace`): the GPU rental marketplace's daily offer snapshot
  (vast.ai search API archive, JSON or gzip; samples in `oracle/data/offers/`).
- `parse_csv` (`listings`): the marketplace's per-model US listings CSVs
  (`oracle/data/listings/MODEL-us/DAY.csv`).
- `HttpJsonSource` (`http`): any HTTP JSON feed, mapped to quotes by a `FieldMap`,
  with retries and back-off.

`RowCountHistory` (`history`) flags a run that returned far fewer rows than usual.
A source that cannot be read as a whole raises `SourceError`; a bad row never does.
"""

from oracle.sources.errors import SourceError
from oracle.sources.history import RowCountHistory
from oracle.sources.http import FieldMap, HttpJsonSource
from oracle.sources.listings import parse_csv
from oracle.sources.marketplace import parse_snapshot
from oracle.sources.quote import Quote, SourceResult, SourceTier

__all__ = [
    "FieldMap",
    "HttpJsonSource",
    "Quote",
    "RowCountHistory",
    "SourceError",
    "SourceResult",
    "SourceTier",
    "parse_csv",
    "parse_snapshot",
]
