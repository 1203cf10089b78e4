"""The manager's desk on the test bed: assigning by moving mail, as from any mail client."""
from __future__ import annotations

import pytest

from mailrouter.samples import ENGLISH, Sample, compose
from tests.mailcheck import (configure, folder_of, forwards_by_original, parsed, route_all, run_until,
                             shared_copies)

pytestmark = pytest.mark.integration


def unrecognized(sender: str, subject: str, n: int) -> Sample:
    return Sample(subject, ("sales@example.com",), compose(sender, subject, ENGLISH, n=n), "unrecognized")


def move(bed, user: str, source: str, target: str) -> None:
    """What a manager's mail client does on drag and drop."""
    client = bed.imap(user)
    try:
        client.select_folder(source)
        client.move(client.search(["ALL"]), target)
    finally:
        client.logout()


def test_moving_into_assign_routes_files_and_teaches_the_registry(bed, tmp_path):
    config = configure(bed, tmp_path)
    first = unrecognized("Sam Lee <sam@global-imports.com>", "Catalogue request", 501)
    route_all(bed, config, [first])
    copies = shared_copies(bed, "sales@example.com")
    assert folder_of(copies, first) == ["Unrecognized"]
    assert "Assign/张伟" in bed.folders("sales@example.com")

    move(bed, "sales@example.com", "Unrecognized", "Assign/张伟")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), first) == ["Routed/张伟"],
              "the assigned copy to be filed")
    (rep, fwd), = forwards_by_original(bed, config)[str(parsed(first.raw)["Message-ID"])]
    assert rep == "zhang" and "manager" in fwd.get_body(("plain",)).get_content()
    copies = shared_copies(bed, "sales@example.com")
    assert folder_of(copies, first) == ["Routed/张伟"]
    assert copies["Assign/张伟"] == []

    # the next mail from the same company needs no manager: the registry learned the domain
    again = unrecognized("Amy Chan <amy@global-imports.com>", "Price list", 502)
    route_all(bed, config, [again])
    (rep, fwd), = forwards_by_original(bed, config)[str(parsed(again.raw)["Message-ID"])]
    assert rep == "zhang" and str(fwd["Subject"]).startswith("[再次询盘]")


def test_not_an_inquiry_folder_files_as_ignored(bed, tmp_path):
    config = configure(bed, tmp_path)
    spam = unrecognized("Promo <deals@cheap-seo.com>", "Boost your ranking", 511)
    route_all(bed, config, [spam])
    move(bed, "sales@example.com", "Unrecognized", "Assign/Not an inquiry")
    run_until(config, lambda: folder_of(shared_copies(bed, "sales@example.com"), spam) == ["Ignored"],
              "the copy to be filed as ignored")
    assert folder_of(shared_copies(bed, "sales@example.com"), spam) == ["Ignored"]
    assert forwards_by_original(bed, config) == {}
