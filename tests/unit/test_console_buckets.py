"""The bucket pages' own arithmetic: folders from prefixes, upload keys, sizes, file names."""

from __future__ import annotations

from mlmarket.console.buckets import Crumb, attachment, crumbs, folder_of, size_text, upload_key


def test_a_prefix_lies_in_the_folder_up_to_its_last_slash() -> None:
    assert folder_of("") == ""
    assert folder_of("rep") == ""
    assert folder_of("a/b/") == "a/b/"
    assert folder_of("a/b/rep") == "a/b/"


def test_crumbs_lead_from_the_top_to_the_prefixs_folder_each_listing_its_own() -> None:
    assert crumbs("") == []
    assert crumbs("runs/2024/lo") == [Crumb("runs/", "runs/"), Crumb("2024/", "runs/2024/")]
    # an empty segment is a folder too, as S3 rolls it up
    assert crumbs("a//b") == [Crumb("a/", "a/"), Crumb("/", "a//")]


def test_an_upload_goes_into_the_folder_given_even_without_its_final_slash() -> None:
    assert upload_key("", "loss.csv") == "loss.csv"
    assert upload_key("runs/2024/", "loss.csv") == "runs/2024/loss.csv"
    assert upload_key("runs/2024", "loss.csv") == "runs/2024/loss.csv"
    assert (
        upload_key("runs/", "C:\\Users\\me\\loss.csv") == "runs/loss.csv"
    )  # a path cut to its name


def test_sizes_read_in_binary_units() -> None:
    assert size_text(0) == "0 B"
    assert size_text(1023) == "1023 B"
    assert size_text(1536) == "1.5 KiB"
    assert size_text(3 * 1024**2) == "3.0 MiB"
    assert size_text(5 * 1024**4) == "5120.0 GiB"


def test_a_download_is_an_attachment_named_after_the_key_with_an_ascii_fallback() -> None:
    assert attachment("runs/w.bin") == "attachment; filename=\"w.bin\"; filename*=UTF-8''w.bin"
    assert attachment('a/"é\r\n.txt') == (
        "attachment; filename=\"____.txt\"; filename*=UTF-8''%22%C3%A9%0D%0A.txt"
    )
    assert attachment("folder/").startswith('attachment; filename="object"')
