"""The console in a real browser: Debian's Chromium, driven by Selenium through the
matching Debian chromedriver (no browser download, no internet).

An operator logs in, finds a parked document, reads its journey, resends it with a
reason, and sees it delivered with the action in its history; an agency officer fails to
see another agency's document; a POST without the CSRF token is refused. Screenshots
go to ``$LGSP_ARTIFACTS`` (default ``tests/artifacts/console``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console_support import COMMITTEE, PASSWORD, Province, province

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("LGSP_ARTIFACTS") or
                 Path(__file__).resolve().parents[1] / "artifacts") / "console"

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)) and not os.environ.get("CI"):
    pytest.skip("Chromium and chromedriver are not installed (ops/install-services.sh "
                "installs them; CI fails instead of skipping)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1000", "--lang=vi"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def log_in(driver: WebDriver, bus: Province, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(bus.url + "/console/login")
    driver.find_element(By.ID, "user").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait_url(driver, "/console/documents")
    assert driver.find_element(By.CSS_SELECTOR, "header .user").text.startswith(name)


def wait_url(driver: WebDriver, fragment: str, timeout_s: float = 15.0) -> None:
    """A click returns before the next page is there: wait for its address."""
    deadline = time.monotonic() + timeout_s
    while fragment not in driver.current_url:
        assert time.monotonic() < deadline, f"{driver.current_url} never showed {fragment}"
        time.sleep(0.1)


def wait_for(driver: WebDriver, check: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        driver.refresh()
        if callable(check) and check():
            return
        assert time.monotonic() < deadline, f"timed out on {driver.current_url}"
        time.sleep(0.3)


def test_operator_resends_a_parked_document_and_an_officer_cannot_see_others(
        tmp_path: Path, browser: WebDriver) -> None:
    with province(tmp_path) as bus:
        bus.user("lan.nguyen", "operator")
        bus.user("xa31", "officer", system="hcm_egov")
        for ids in (bus.send("Báo cáo tình hình kinh tế - xã hội tháng 11",
                             code="210/BC-UBND"),
                    bus.send("Thông báo lịch tiếp công dân", to=COMMITTEE, code="15/TB-VP")):
            bus.wait_state(ids["delivery"], "delivered")
        parked = bus.parked("Công văn về việc triển khai chữ ký số cho cán bộ cấp xã",
                            code="123/UBND-KSTT")
        other = bus.send("Giấy mời họp giao ban tuần của văn phòng", to=COMMITTEE,
                         code="77/GM-VP")

        log_in(browser, bus, "lan.nguyen")
        Select(browser.find_element(By.ID, "state")).select_by_value("parked")
        browser.find_element(By.ID, "search").click()
        wait_url(browser, "state=parked")
        rows = browser.find_elements(By.CSS_SELECTOR, "#documents tbody tr")
        assert len(rows) == 1 and "chữ ký số" in rows[0].text
        shot(browser, "01-search-parked")
        rows[0].find_element(By.CSS_SELECTOR, "a.subject").click()
        wait_url(browser, f"/console/documents/{parked['document']}")

        assert "chữ ký số" in browser.find_element(By.ID, "subject").text
        state = browser.find_element(By.CSS_SELECTOR, "#recipients .delivery-state")
        assert state.text == "tạm giữ"
        timeline = browser.find_element(By.ID, "timeline").text
        for step in ("Trục tiếp nhận văn bản", "Định tuyến", "Lần gửi",
                     "Tạm giữ sau nhiều lần lỗi", "default:hosted"):
            assert step in timeline
        shot(browser, "02-journey-parked")

        browser.find_element(By.CSS_SELECTOR, "#recipients input[name=ids]").click()
        Select(browser.find_element(By.ID, "action")).select_by_value("resend")
        browser.find_element(By.ID, "reason").send_keys("Hệ thống của xã đã hoạt động lại")
        browser.find_element(By.ID, "apply").click()
        wait_url(browser, "/console/actions")
        assert "tạm giữ → chờ gửi" in browser.find_element(By.ID, "results").text
        browser.find_element(By.CSS_SELECTOR, "#results a").click()
        wait_url(browser, f"/console/documents/{parked['document']}")

        wait_for(browser, lambda: browser.find_element(
            By.CSS_SELECTOR, "#recipients .delivery-state").text == "đã chuyển")
        timeline = browser.find_element(By.ID, "timeline").text
        assert "Vận hành viên: gửi lại" in timeline
        assert "console:lan.nguyen" in timeline
        assert "Hệ thống của xã đã hoạt động lại" in timeline
        assert "Đã chuyển tới hệ thống nhận" in timeline
        assert bus.state(parked["delivery"]) == "delivered"
        browser.set_window_size(1280, 1400)
        shot(browser, "03-journey-delivered")
        browser.set_window_size(1280, 1000)

        stuck = bus.parked("Tờ trình phê duyệt kế hoạch", to=COMMITTEE, code="9/TTr-STTTT")
        browser.get(bus.url + "/console/queues")
        assert "Đang cho phép" in browser.find_element(By.ID, "bulk-state").text
        assert "vnpt_ioffice" in browser.find_element(By.ID, "queues").text
        assert stuck["delivery"] in browser.find_element(
            By.ID, "parked").get_attribute("innerHTML")
        shot(browser, "04-queues")
        browser.get(bus.url + "/console/lang/en?next=/console/state")
        assert "Readiness" in browser.find_element(By.TAG_NAME, "h1").text
        shot(browser, "05-state-en")
        browser.get(bus.url + "/console/lang/vi?next=/console/documents")

        log_in(browser, bus, "xa31")
        listing = browser.find_element(By.ID, "documents").text
        assert "chữ ký số" in listing
        assert "Giấy mời họp" not in listing and "lịch tiếp công dân" not in listing
        browser.get(f"{bus.url}/console/documents/{other['document']}")
        assert browser.find_element(By.ID, "error").text == "Không tìm thấy."
        assert "Giấy mời họp" not in browser.page_source
        shot(browser, "06-officer-other-agency")

        # A page of another site cannot make the browser act: without the session's
        # CSRF token the POST is refused, even though the browser sends the cookie.
        log_in(browser, bus, "lan.nguyen")
        browser.execute_script("""
            const f = document.createElement('form');
            f.method = 'post'; f.action = '/console/actions';
            for (const [k, v] of [['ids', arguments[0]], ['action', 'cancel'],
                                  ['reason', 'forged']]) {
                const i = document.createElement('input');
                i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f); f.submit();""", parked["delivery"])
        deadline = time.monotonic() + 15
        while not browser.find_elements(By.ID, "error"):
            assert time.monotonic() < deadline, "the forged POST got no answer page"
            time.sleep(0.2)
        assert "Biểu mẫu đã hết hạn" in browser.find_element(By.ID, "error").text
        assert bus.state(parked["delivery"]) == "delivered"
