"""The kiosk app: screens for shoppers, the link to the agent, the session and its idle reset.

Locked down for a public screen: no command palette, no quit key (ctrl+q / ctrl+c do
nothing), nothing that leads to a shell; systemd stops it with a signal. Hardware events
(taps, scans, presence) arrive from the agent as Messages and start the matching flow from
any shopper screen. A session — language, typed codes, open screens — is wiped after
`[kiosk] idle_s` without a touch, after an "Are you still there?" warning.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from agent.contracts import events as ev
from agent.contracts.alerts import AlertKind
from agent.contracts.bus import CloudEvent, Op
from agent.contracts.content_paths import current_bundle
from kiosk.assist import ARRIVALS, AlertFollow, Said, send_call
from kiosk.brand import DEFAULT_THEME, THEME_NAME, BrandTheme
from kiosk.content import Bundle, load_bundle_with_look
from kiosk.errors import KioskError
from kiosk.i18n import Translator, load_catalogues
from kiosk.link import AgentLink
from kiosk.personal import PersonalOffer
from kiosk.pin import PinGate
from kiosk.routing import route_event
from kiosk.safe_text import NAME_MAX, plain
from kiosk.screens.attract import AttractScreen
from kiosk.screens.checkin import CheckinScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.idle import IdleWarning
from kiosk.screens.offer import OfferScreen
from kiosk.screens.privacy import PrivacyScreen
from kiosk.screens.product import ProductScreen
from kiosk.screens.result import ResultScreen
from kiosk.screens.staff import StaffScreen
from kiosk.screens.staff_pin import StaffPinScreen
from kiosk.screens.survey import SurveyScreen
from kiosk.session import ShopperSession
from kiosk.settings import KioskSettings
from kiosk.state import state_dir
from kiosk.stats import TodayStats
from kiosk.web_pictures import PictureOverlay
from kiosk.widgets.agent_banner import AgentBanner
from kiosk.widgets.shopper_bar import ShopperBar

SAMPLE_CONTENT = Path(__file__).resolve().parent / "sample_content"
IDLE_TICK_S = 1.0
PROBLEM_MAX: Final = 1000  # a refused bundle's reasons, as staff read them (up to ten)


class KioskApp(App[None]):
    CSS_PATH = Path(__file__).resolve().parent / "theme.tcss"  # absolute: subclasses live elsewhere
    TITLE = "o2o-edge kiosk"
    ENABLE_COMMAND_PALETTE = False
    # nothing is focused by itself: a focus highlight on a touch screen reads as "already
    # chosen" (the survey's first star looked picked); a tapped button does not stay lit
    AUTO_FOCUS = None
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "nothing", show=False, priority=True),
        Binding("ctrl+c", "nothing", show=False, priority=True),
        Binding("ctrl+p", "nothing", show=False, priority=True),
    ]

    class AgentEvent(Message):
        def __init__(self, event: CloudEvent) -> None:
            super().__init__()
            self.event = event

    class AgentState(Message):
        def __init__(self, up: bool, reason: str) -> None:
            super().__init__()
            self.up = up
            self.reason = reason

    def __init__(self, cfg: KioskSettings, clock: Callable[[], float] = time.monotonic,
                 connect: bool = True, rng: random.Random | None = None) -> None:
        """`rng` picks the A/B variants (kiosk/session.py): seeded in tests."""
        super().__init__()
        self.cfg = cfg
        self.clock = clock
        self.catalogues = load_catalogues()
        self.translator = Translator(self.catalogues, cfg.kiosk.language)
        self.content_problem = ""
        self.brand: BrandTheme | None = None  # the bundle's colours (kiosk/brand.py)
        self.images: dict[str, Any] = {}  # page id -> its picture (kiosk/images.py)
        self.bundle = self._first_bundle()
        self.agent_up = False
        self.link = AgentLink(cfg.bus.socket, self._on_link_event, self._on_link_state)
        self.connect = connect
        self.last_touch = clock()
        self.session_started = clock()
        # not for secrets: which A/B variant a shopper sees needs no unpredictability
        self.session = ShopperSession(rng or random.Random())  # noqa: S311
        self.personal = PersonalOffer(clock)  # the one opted-in app at the kiosk's offer
        self.rest_since: float | None = None  # at home, untouched, since then
        self.idle_warning: IdleWarning | None = None
        self.content_screen: ContentScreen | None = None  # one card, filled in place
        # the PIN's wrong tries and lock-out are shared by every kiosk process (a served
        # kiosk runs one per browser connection): kept in the kiosk's state directory
        shared = state_dir()
        self.pin_gate = PinGate(cfg.kiosk.staff_pin_hash, clock,
                                shared / "pin-tries.json" if shared else None)
        self.stats = TodayStats()
        self.follow = AlertFollow(clock)  # the shopper's call or pickup, until staff come
        self.follow_text = ""  # what the shopper was last told about it (tests read it)
        self.follow_said: Said | None = None  # the same as words, said again in a new language
        # (monotonic time, what) when a screen change was on screen: tests and benchmarks
        self.shown: list[tuple[float, str]] = []
        self.on_shown: Callable[[float, str], None] | None = None
        self.pictures: PictureOverlay | None = None  # served: pictures as real pixels

    # --- content -------------------------------------------------------------------------

    def content_folder(self) -> Path | None:
        """[kiosk] content_dir, else the bundle the agent got from upstream, else None."""
        if self.cfg.kiosk.content_dir:
            return Path(self.cfg.kiosk.content_dir)
        delivered = current_bundle(self.cfg.kiosk.store_db)
        return delivered if (delivered / "manifest.json").exists() else None

    def _first_bundle(self) -> Bundle:
        folder = self.content_folder()
        if folder is not None:
            try:
                bundle, self.brand, self.images = load_bundle_with_look(folder)
                return bundle
            except KioskError as exc:
                self.content_problem = plain(str(exc), PROBLEM_MAX)
        bundle, self.brand, self.images = load_bundle_with_look(SAMPLE_CONTENT)
        return bundle

    def apply_brand(self) -> None:
        """The bundle's colours as the app's theme, or the kiosk's own without them."""
        if self.brand is None:
            self.theme = DEFAULT_THEME
            return
        self.register_theme(self.brand.textual())  # replaces the last bundle's
        # a re-registered theme of the same name is only picked up when switched to
        self.theme = DEFAULT_THEME
        self.theme = THEME_NAME

    def reload_content(self) -> str:
        """Load the bundle again; a bad one is refused and the last good one stays."""
        folder = self.content_folder()
        if folder is None:
            return self.translator("staff.reload.sample")
        try:
            self.bundle, self.brand, self.images = load_bundle_with_look(folder)
        except KioskError as exc:
            self.content_problem = plain(str(exc), PROBLEM_MAX)
            return self.content_problem
        self.content_problem = ""
        self.apply_brand()
        return self.translator("staff.reload.loaded", version=self.bundle.version)

    # --- lifecycle -----------------------------------------------------------------------

    def on_mount(self) -> None:
        write_meta = getattr(self._driver, "write_meta", None)
        if self.is_web and write_meta is not None:
            self.pictures = PictureOverlay(write_meta)
        self.apply_brand()
        self.push_screen(AttractScreen())
        self.mark_shown("attract")
        # what is alive after start-up lives as long as the kiosk: keep it out of the
        # collector's scans, which otherwise walk it all on every full collection
        self.call_after_refresh(gc.freeze)
        # which display and content this kiosk runs with, for staff and remote support
        self.record(ev.KIOSK_STARTED, ev.KioskStarted(
            cols=self.size.width, rows=self.size.height, language=self.translator.language,
            content_version=self.bundle.version, content_problem=self.content_problem or None))
        self.set_interval(IDLE_TICK_S, self.idle_tick)
        if self.connect:
            self.run_worker(self.link.run(), name="agent-link", exit_on_error=False)

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        super()._display(screen, renderable)
        if self.pictures is not None and renderable is not None and not self._batch_count:
            self.pictures.frame(screen, self.size)

    def action_nothing(self) -> None:
        """Bound to the keys that would quit: a public kiosk does not quit."""

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.MouseDown | events.Key):
            self.touch()
        await super().on_event(event)
        if isinstance(event, events.MouseUp):
            # a touch screen has no hover: the pointer stays where the finger lifted, and
            # the button there (or the one the next screen puts there) stayed lit as if
            # chosen. A mouse that moves again hovers again.
            self._set_mouse_over(None, None)

    # --- the agent ------------------------------------------------------------------------

    def _on_link_event(self, event: CloudEvent) -> None:
        self.post_message(self.AgentEvent(event))

    def _on_link_state(self, up: bool, reason: str) -> None:
        self.post_message(self.AgentState(up, reason))

    def on_kiosk_app_agent_state(self, message: AgentState) -> None:
        self.agent_up = message.up
        for screen in self.screen_stack:
            for banner in screen.query(AgentBanner):
                banner.display = not message.up
        if self.content_screen is not None and self.content_screen.is_mounted:
            self.content_screen.refit()

    def on_kiosk_app_agent_event(self, message: AgentEvent) -> None:
        self.stats.add(message.event)
        coming = self.follow.on_event(message.event)
        if coming is not None:
            self.tell_shopper(Said("staff.coming", (("name", coming),)), timeout=20)
        if self._helped(message.event):
            # staff closed the call of a shopper waiting at home: no Back or Done will come
            self.offer_survey("staff-call")
        if self.personal.observe(message.event):
            self.ask_personal_offer()
        data = message.event.get("data")
        if message.event.get("type") == ev.LINK_COMMAND and \
                isinstance(data, dict) and data.get("name") == "reload-content":
            # the outcome quotes the bundle (its keys, its file names): never markup
            self.notify(self.reload_content(), severity="information", markup=False)
            return
        if self.in_staff_mode():
            if isinstance(self.screen, StaffScreen) and message.event.get("type") in (
                    ev.NFC_TAP, ev.QR_SCAN):
                self.screen.hardware_event(message.event)
            return
        action = route_event(message.event, self.bundle)
        if action is None:
            return
        self.touch()  # a tap or a scan is the shopper at work, as much as a touch
        kind, arg = action
        if kind == "page":
            self.open_page(arg["page"], arg["medium"])
        elif kind == "checkin":
            self.check_in(arg["request"], via=arg["via"])
        elif kind == "result":
            self.show_result(arg["outcome"], {})
        elif kind == "offer":  # a signed offer code: good, or why not
            self._to_base()
            self.push_screen(OfferScreen(arg["outcome"], arg["offer"]))
            self.mark_shown(f"offer:{arg['outcome']}")
        elif kind == "product":  # a product's barcode: its card from the catalog
            self.show_product(arg["gtin"])

    def _helped(self, event: CloudEvent) -> bool:
        """Staff closed the alert of this session's call while the kiosk is at home."""
        data = event.get("data")
        w = self.follow.waiting
        return (event.get("type") == ev.STAFF_ALERT_CLOSED and isinstance(data, dict)
                and w is not None and w.kind == AlertKind.CALL_STAFF
                and w.alert is not None and data.get("alert") == w.alert
                and self.session.survey_due() == "staff-call"
                and len(self.screen_stack) <= 2 and not self.in_staff_mode())

    @work(group="personal", exclusive=True)
    async def ask_personal_offer(self) -> None:
        """The one app at the kiosk's offer (kiosk/personal.py), on the home screen."""
        if await self.personal.ask(self.link.request):
            for screen in self.screen_stack:
                if isinstance(screen, AttractScreen):
                    screen.show_slide()
            self._record_personal()

    def _record_personal(self) -> None:
        """The personal offer counts as shown once it is on the home screen in front of the
        shopper (not while a card or staff mode covers it), once each time it comes."""
        if len(self.screen_stack) <= 2:
            view = self.personal.view(self.translator.language, self.bundle.version)
            if view is not None:
                self.record(ev.KIOSK_VIEW, view)

    def personal_text(self) -> str:
        """The personal offer in the shopper's language, "" for none."""
        return self.personal.text(self.translator.language)

    def record(self, event_type: str, data: Mapping[str, Any]) -> None:
        """A kiosk event for the agent's outbox (queued while the agent is down); `data` is
        the type's payload (agent/contracts/events.py), built with its TypedDict."""
        self.run_worker(self.link.emit(event_type, data), group="emit", exit_on_error=False)

    # --- navigation ------------------------------------------------------------------------

    def in_staff_mode(self) -> bool:
        return any(getattr(s, "staff", False) for s in self.screen_stack)

    def _to_base(self) -> None:
        while len(self.screen_stack) > 2:  # the default screen and the attract screen stay
            self.pop_screen()
        self.idle_warning = None  # popped with the rest
        self.screen_stack[-1].set_focus(None)  # the button that left home is not lit

    def home(self) -> None:
        """Back to the attract screen; once a session, by way of the survey when the shopper
        browsed offers without checking in, or called staff (kiosk/session.py)."""
        after = self.session.survey_due()
        if after is not None and not self.in_staff_mode():
            self.offer_survey(after)
            return
        self._to_base()
        self.mark_shown("attract")
        self._record_personal()

    def offer_survey(self, after: str) -> None:
        """The one-tap survey (`after`: what the shopper did), at most once a session."""
        self.session.surveyed = True
        self._to_base()
        self.push_screen(SurveyScreen(after))
        self.mark_shown("survey")

    def go(self, target: str) -> None:
        if target in ("pickup", "appointment"):
            self.push_screen(CheckinScreen(target))
        elif target == "browse":
            pages = self.offer_ids()
            self.open_page(pages[0], "touch")
        elif target == "privacy":
            self.push_screen(PrivacyScreen())
        elif target == "survey":
            self.offer_survey(getattr(self.screen, "outcome", ""))
            return
        elif target == "staff":
            self.push_screen(StaffPinScreen())
        self.mark_shown(target)

    def offer_ids(self) -> tuple[str, ...]:
        """The offers a shopper browses through: the attract loop's, else every page."""
        return self.bundle.attract or tuple(self.bundle.pages)

    def open_page(self, page_id: str, medium: str) -> None:
        page = self.bundle.pages.get(page_id)
        if page is None:
            return
        page = self.session.shown(page)  # its A/B variant, the same all session
        self.session.viewed = True
        if self.content_screen is None:
            self.content_screen = ContentScreen(page, medium)
            self.install_screen(self.content_screen, name="content")
        self.content_screen.show(page, medium)
        if self.screen is not self.content_screen:
            self._to_base()
            self.push_screen("content")
        self.mark_shown(f"page:{page_id}")
        view = ev.KioskView(page=page.id, campaign=page.campaign, medium=medium,
                            language=self.translator.language,
                            content_version=self.bundle.version)
        if page.variant:
            view["variant"] = page.variant
        if self.session.first_view(page.id):
            view["first"] = True
        self.record(ev.KIOSK_VIEW, view)

    @work(group="checkin")
    async def check_in(self, request: dict[str, Any], via: str) -> None:
        self.session.checked_in = True
        try:
            reply = await self.link.request({"op": Op.CHECKIN, "request": {
                **request, "via": via, "content_version": self.bundle.version,
                "variants": dict(self.session.variants)}})
            result = dict(reply.get("result") or {})
        except KioskError:
            result = {"outcome": "unavailable"}
        outcome = str(result.pop("outcome", "invalid"))
        alert = result.pop("alert", None)
        follow = ""
        if outcome in ARRIVALS and isinstance(alert, str):  # staff alerted: follow that alert
            self.follow.called(ARRIVALS[outcome], alert=alert)
            self.follow_said = Said("staff.notified")
            follow = self.follow_text = self.follow_said.text(self.translator)
        self.show_result(outcome, result, follow)

    @work(group="product", exclusive=True)
    async def show_product(self, gtin: str) -> None:
        try:
            reply: dict[str, Any] | None = dict(await self.link.request(
                {"op": Op.CATALOG_LOOKUP, "gtin": gtin}))
        except KioskError:  # the agent away or refusing: the card says so kindly
            reply = None
        screen = ProductScreen(gtin, reply)
        self._to_base()
        self.push_screen(screen)
        self.mark_shown(screen.outcome)

    def show_result(self, outcome: str, values: dict[str, Any], follow: str = "") -> None:
        self._to_base()
        self.push_screen(ResultScreen(outcome, values, follow))
        self.mark_shown(f"result:{plain(outcome, NAME_MAX)}")

    def mark_shown(self, what: str) -> None:
        def painted() -> None:
            now = time.monotonic()
            self.shown.append((now, what))
            del self.shown[:-100]
            if self.on_shown is not None:
                self.on_shown(now, what)
        self.call_after_refresh(painted)

    # --- language and staff ---------------------------------------------------------------

    def language_choices(self) -> list[tuple[str, str]]:
        return [(c, self.translator.name(c)) for c in self.translator.languages]

    async def on_shopper_bar_language_picked(self, message: ShopperBar.LanguagePicked) -> None:
        if message.code in self.catalogues and message.code != self.translator.language:
            self.translator.language = message.code
            self._say_again()
            await self._recompose_all()

    async def _recompose_all(self) -> None:
        for screen in self.screen_stack[1:]:
            await screen.recompose()
        card = self.content_screen
        if card is not None and card.is_mounted and card not in self.screen_stack:
            await card.recompose()

    def on_shopper_bar_staff_called(self, message: ShopperBar.StaffCalled) -> None:
        self.session.called_staff = True
        self.call_staff(ev.KioskAssist(screen=getattr(self.screen, "name_for_events", "")))

    @work(group="call-staff")
    async def call_staff(self, data: ev.KioskAssist) -> None:
        """The call goes to the agent now, for the id its alert will name as `cause`; with
        the agent away it is kept for later and the shopper is sent to the counter."""
        taken, cause = await send_call(self.link, data, self.agent_up)
        if taken:
            self.follow.called(AlertKind.CALL_STAFF, cause=cause)
            self.tell_shopper(Said("staff.notified"))
        else:
            self.follow.forget()
            self.tell_shopper(Said("staff.ask-counter"), timeout=12)

    def tell_shopper(self, said: Said, timeout: float = 10) -> None:
        """A word about the staff call or pickup: on the result screen's line when one is
        open, else as a note over whatever screen is up."""
        self.follow_said = said
        text = self.follow_text = said.text(self.translator)
        if isinstance(self.screen, ResultScreen) and self.screen.is_mounted:
            self.screen.follow_up(text)
        else:
            self.clear_notifications()  # the new word replaces the last: they do not pile up
            self.notify(text, timeout=timeout, markup=False)

    def _say_again(self) -> None:
        """After a language switch: the follow-up line in the new language (the result
        screens are recomposed from it next)."""
        if self.follow_said is None:
            return
        text = self.follow_text = self.follow_said.text(self.translator)
        for screen in self.screen_stack:
            if isinstance(screen, ResultScreen) and screen.follow:
                screen.follow = text

    def enter_staff_mode(self) -> None:
        self.session.surveyed = True  # staff at the kiosk: no survey for them to skip
        self._to_base()
        self.push_screen(StaffScreen())
        self.record(ev.KIOSK_STAFF, ev.KioskStaff(action="enter"))
        self.mark_shown("staff")

    def leave_staff_mode(self) -> None:
        self.record(ev.KIOSK_STAFF, ev.KioskStaff(action="leave"))
        self.home()

    # --- idle reset ---------------------------------------------------------------------------

    def touch(self) -> None:
        self.last_touch = self.clock()
        self.rest_since = None

    async def idle_tick(self) -> None:
        if self.personal.due():
            self.ask_personal_offer()
        idle = self.clock() - self.last_touch
        k = self.cfg.kiosk
        at_rest = len(self.screen_stack) <= 2 and self.translator.language == k.language
        if at_rest and not self.in_staff_mode():
            self._rest_tick(k.idle_s)
        else:
            self.rest_since = None
        if at_rest or self.in_staff_mode():
            self.last_touch = self.clock()  # the idle count starts when the shopper leaves home
            return
        if idle >= k.idle_s:
            await self.reset_session("idle")
        elif idle >= k.idle_s - k.idle_warning_s:
            left = max(1, round(k.idle_s - idle))
            if self.idle_warning is None:
                self.idle_warning = IdleWarning(left)
                self.push_screen(self.idle_warning, self._warning_closed)
            else:
                self.idle_warning.count(left)
        elif self.idle_warning is not None and self.idle_warning in self.screen_stack:
            self.idle_warning.dismiss(True)  # touched while the warning was up

    def _rest_tick(self, idle_s: float) -> None:
        """At home, untouched for `idle_s`: the shopper left from the home screen, and the
        next one starts a session of their own (A/B variants, survey) though nothing on the
        screen needs resetting."""
        now = self.clock()
        if self.rest_since is None:
            self.rest_since = now
        elif now - self.rest_since >= idle_s and self.session.started():
            self.session.reset()
            self.record(ev.KIOSK_SESSION, ev.KioskSession(
                ended="idle-home", duration_s=round(now - self.session_started, 1)))
            self.session_started = self.rest_since = now

    def _warning_closed(self, stay: bool | None) -> None:
        self.idle_warning = None
        self.touch()

    async def reset_session(self, why: str) -> None:
        if self.idle_warning is not None:
            self.idle_warning = None
        while len(self.screen_stack) > 2:
            await self.pop_screen()
        self.screen.set_focus(None)  # the next shopper sees nothing picked
        if self.translator.language != self.cfg.kiosk.language:
            self.translator.language = self.cfg.kiosk.language
            await self._recompose_all()
        self.follow.forget()
        self.follow_text, self.follow_said = "", None
        self.session.reset()
        self.record(ev.KIOSK_SESSION, ev.KioskSession(
            ended=why, duration_s=round(self.clock() - self.session_started, 1)))
        self.session_started = self.clock()
        self.touch()
        self.mark_shown("attract")
        self._record_personal()
