"""A hand-built month of one grid's cases for the people's scores (issue 17): 漏报率 and
self-handling (自处置) beside a supervisor's own work. Shared by the unit test of the
figures and the integration test that `GET /scores` answers the same.

Grid …002001 (street 001, community 001002), its supervisor sup-3:

    A  hotline, given sup-3 to verify, verified by sup-3, filed      public, filed
    B  sup-3 on patrol, filed                                         found, filed
    C  website, given sup-3, refuted by sup-3 on site (voided)        not filed
    D  sup-3 on patrol, fixed on the spot                             自处置
    E  hotline, given sup-3, filed by the centre without verifying    public, filed
    G  grid manager GM-1 on patrol, fixed on the spot                 自处置 (the grid's)
    F  sup-7 on patrol in grid …001001 (street 002), filed            another grid
"""

from __future__ import annotations

from datetime import datetime

from tests.evaluation_story import OTHER_GRID, START, Story

MANAGER = {"role": "grid_staff", "id": "GM-1"}


def people_stories(tag: str, at: datetime = START) -> list[Story]:
    def story(name: str) -> Story:
        return Story(f"{tag}-{name}", at)

    sup3 = {"role": "supervisor", "id": "sup-3"}
    a = story("A").reported(channel="hotline", verifier="sup-3").verified(by="sup-3").filed()
    b = story("B").reported(actor=sup3).filed()
    c = story("C").reported(channel="website", verifier="sup-3").voided(by="sup-3")
    d = story("D").reported(actor=sup3).self_handled(actor=sup3)
    e = story("E").reported(channel="hotline", verifier="sup-3").filed(operator="wang")
    g = story("G").reported(actor=MANAGER, reporter_id="GM-1").self_handled(actor=MANAGER)
    f = story("F").reported(actor={"role": "supervisor", "id": "sup-7"}, grid=OTHER_GRID)
    f.filed(grid=OTHER_GRID)
    return [a, b, c, d, e, g, f]


# By hand, for sup-3 (each figure: numerator / denominator, the cases):
#   filing_rate           B / B                 (D is not decided: never filed or voided)
#   on_time_verification  A, C / A, C           (E's was withdrawn by the centre, in time)
#   on_time_check         none
#   missed_reports        A, E / A, B, E        2 of 3 first reported by the public
#   self_handled          D / B, D
# Composite (default and demo weights: 40 / 30 / 30 / 20, missed as 1 − rate; the check
# did not apply): 100 × (40 × 1 + 30 × 1 + 20 × 1/3) / 90 = 85.19, grade B.
SUP3_SCORE = 85.19
