"""Fixed reference tables of the realistic world: countries, merchant categories, e-mail
domains, the rhythm of a day and a week.

Plain tuples, so the world's draws depend only on the seed and the parameters, never on a
file or the locale. The numbers are plausible orders of magnitude, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# -- countries ---------------------------------------------------------------------------------

COUNTRIES: tuple[str, ...] = (
    # where customers live (with their share of the population)
    "DE", "FR", "NL", "ES", "IT", "BE", "AT",
    # where they travel to
    "GB", "CH", "PT", "GR", "HR", "TR", "US", "TH",
    # where stolen card details are used from, and datacenters
    "BR", "NG", "RU", "CN", "RO", "VN", "ID", "UA", "PH",
)
HOME_COUNTRY_WEIGHTS = np.array([0.30, 0.21, 0.12, 0.12, 0.14, 0.06, 0.05])
N_HOME = len(HOME_COUNTRY_WEIGHTS)
# destinations of trips (indices into COUNTRIES): home countries are also abroad for each other
TRAVEL_COUNTRIES = np.arange(0, 15)
TRAVEL_WEIGHTS = np.array([6, 8, 3, 12, 11, 2, 4, 7, 3, 6, 5, 4, 4, 3, 2], dtype=float)
# countries whose residential IPs fraudsters use (or rent as proxies), and datacenter homes
FRAUD_COUNTRIES = np.array([COUNTRIES.index(c) for c in
                            ("US", "BR", "NG", "RU", "CN", "RO", "VN", "ID", "UA", "PH")])
DATACENTER_COUNTRIES = np.array([COUNTRIES.index(c) for c in ("US", "NL", "DE", "GB", "RO")])

# -- IP addresses ------------------------------------------------------------------------------

IP_KINDS: tuple[str, ...] = ("broadband", "carrier_nat", "residential", "datacenter")
"""How an address is used: a household's line; a mobile carrier's NAT, shared by hundreds of
customers; a residential address abroad (a hotel, a friend, or a thief's home); a datacenter
or proxy (hosting, VPN exits)."""
BROADBAND, CARRIER_NAT, RESIDENTIAL, DATACENTER = range(4)

# -- merchant categories -----------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """A merchant category: its ISO 18245 code, how it sells and what it sells for."""

    mcc: str
    name: str
    online_share: float  # share of its merchants that sell online (card not present)
    median_amount: float  # a typical payment
    sigma: float  # spread of log(amount)
    popularity: float  # relative share of merchants (and so of payments)
    resale: bool  # goods a thief can resell
    risk_tier: int  # 0 low, 1 medium, 2 high


CATEGORIES: tuple[Category, ...] = (
    Category("5411", "grocery", 0.05, 35.0, 0.7, 26.0, False, 0),
    Category("5812", "restaurant", 0.0, 28.0, 0.6, 14.0, False, 0),
    Category("5814", "fast_food", 0.0, 11.0, 0.5, 11.0, False, 0),
    Category("5541", "fuel", 0.0, 55.0, 0.4, 7.0, False, 0),
    Category("5912", "pharmacy", 0.1, 18.0, 0.7, 5.0, False, 0),
    Category("5311", "department_store", 0.2, 60.0, 0.8, 5.0, False, 0),
    Category("5651", "clothing", 0.35, 55.0, 0.7, 5.0, False, 1),
    Category("4111", "transit", 0.3, 6.0, 0.6, 5.0, False, 0),
    Category("7011", "hotel", 0.2, 140.0, 0.7, 1.5, False, 1),
    Category("5999", "marketplace", 1.0, 40.0, 0.9, 6.0, False, 1),
    Category("5732", "electronics", 0.6, 180.0, 0.9, 2.5, True, 2),
    Category("5944", "jewelry", 0.5, 220.0, 0.8, 0.6, True, 2),
    Category("6540", "gift_cards", 1.0, 60.0, 0.7, 0.8, True, 2),
    Category("5815", "digital_goods", 1.0, 12.0, 0.8, 4.0, False, 1),
    Category("5499", "food_delivery", 1.0, 30.0, 0.5, 5.0, False, 0),
    Category("4121", "ride_hailing", 1.0, 18.0, 0.5, 3.0, False, 0),
    Category("4899", "streaming", 1.0, 12.0, 0.3, 3.0, False, 0),
    Category("4722", "travel_agency", 1.0, 320.0, 0.8, 1.0, False, 1),
    Category("8398", "charity", 1.0, 20.0, 0.8, 0.6, False, 1),
)


def category_index(name: str) -> int:
    """The position of the category called ``name`` in :data:`CATEGORIES`."""
    for i, c in enumerate(CATEGORIES):
        if c.name == name:
            return i
    raise KeyError(name)


RESALE_CATEGORIES = np.array([i for i, c in enumerate(CATEGORIES) if c.resale])
# what fraud that adapted buys instead: small, digital, quickly spent, nothing to resell
SHIFTED_CATEGORIES = np.array([category_index(n) for n in
                               ("digital_goods", "food_delivery", "ride_hailing", "streaming")])
TESTING_CATEGORIES = np.array([category_index(n) for n in ("charity", "digital_goods")])

# -- e-mail domains ----------------------------------------------------------------------------

FREEMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "gmx.de", "web.de", "orange.fr",
    "libero.it", "ziggo.nl", "telenet.be", "proton.me",
)
FREEMAIL_WEIGHTS = np.array([35, 15, 8, 10, 6, 6, 6, 5, 4, 2, 3], dtype=float)
DISPOSABLE_DOMAINS: tuple[str, ...] = (
    "mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "tempmail.dev",
)
DOMAINS = FREEMAIL_DOMAINS + DISPOSABLE_DOMAINS
FIRST_NAMES: tuple[str, ...] = (
    "anna", "lukas", "marie", "jan", "sofia", "luca", "emma", "noah", "lea", "paul", "julia",
    "hugo", "clara", "mateo", "eva", "tom", "ines", "marco", "nina", "leon",
)

# -- devices -----------------------------------------------------------------------------------

DEVICE_OS: tuple[str, ...] = ("ios", "android", "windows", "macos", "ipados", "linux")
PHONE_OS_WEIGHTS = np.array([0.45, 0.55, 0, 0, 0, 0])
SHARED_OS_WEIGHTS = np.array([0, 0, 0.5, 0.25, 0.25, 0])
FRAUD_OS_WEIGHTS = np.array([0.1, 0.35, 0.3, 0.05, 0, 0.2])

# -- time --------------------------------------------------------------------------------------

# relative share of payments by hour of day (UTC, close enough to the home countries' time)
HOUR_WEIGHTS = np.array([
    0.5, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 1.5, 2.5, 3.0, 3.5, 4.5,
    5.5, 5.0, 4.5, 4.5, 5.0, 5.5, 6.0, 5.5, 4.5, 3.5, 2.2, 1.2,
])
# fraudsters keep other hours: flatter, with more at night
FRAUD_HOUR_WEIGHTS = np.array([
    3.0, 3.0, 3.0, 2.8, 2.5, 2.0, 1.8, 2.0, 2.5, 3.0, 3.0, 3.2,
    3.3, 3.3, 3.2, 3.2, 3.3, 3.4, 3.5, 3.5, 3.5, 3.4, 3.2, 3.1,
])
# Monday .. Sunday: a busier end of the week, a quiet Sunday
WEEKDAY_FACTORS = np.array([0.92, 0.95, 0.97, 1.0, 1.15, 1.21, 0.8])

# -- people: names, addresses, identity documents ----------------------------------------------

GIVEN_NAMES: tuple[str, ...] = (
    "Anna", "Lukas", "Marie", "Jan", "Sofia", "Luca", "Emma", "Noah", "Lea", "Paul", "Julia",
    "Hugo", "Clara", "Mateo", "Eva", "Tom", "Ines", "Marco", "Nina", "Leon", "Elena", "Finn",
    "Chloe", "Louis", "Giulia", "Pablo", "Lotte", "Daan", "Laura", "Jonas", "Sara", "Max",
    "Alba", "Theo", "Mila", "David", "Lina", "Felix", "Marta", "Oscar",
)
# surnames common in each home country (in the order of COUNTRIES[:N_HOME])
SURNAMES: tuple[tuple[str, ...], ...] = (
    ("Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
     "Schulz", "Hoffmann", "Koch", "Richter"),
    ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
     "Leroy", "Moreau", "Simon", "Laurent"),
    ("de Jong", "Jansen", "de Vries", "van Dijk", "Bakker", "Visser", "Smit", "Meijer",
     "de Boer", "Mulder", "Bos", "Vos"),
    ("Garcia", "Rodriguez", "Gonzalez", "Fernandez", "Lopez", "Martinez", "Sanchez", "Perez",
     "Gomez", "Diaz", "Moreno", "Alvarez"),
    ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
     "Marino", "Greco", "Bruno", "Gallo"),
    ("Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
     "Wouters", "De Smet", "Dubois", "Lambert"),
    ("Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer",
     "Hofer", "Leitner", "Berger", "Fuchs"),
)
STREETS: tuple[str, ...] = (
    "main street", "station road", "church street", "park avenue", "market square",
    "mill lane", "school street", "garden road", "lake view", "forest path", "river walk",
    "castle hill", "bridge street", "linden alley", "harbour road", "oak avenue",
)
DOCUMENT_TYPE_WEIGHTS = np.array([0.3, 0.6, 0.1])  # passport, id_card, driving_license
DOCUMENT_YEARS = np.array([10, 10, 15])  # validity of each document type
DOCUMENT_LETTERS = "CFGHJKLMNPRTVWXYZ"  # letters that OCR does not confuse with digits

# -- account events and verification sessions --------------------------------------------------

LOGIN, EMAIL_CHANGE, PASSWORD_CHANGE = range(3)  # codes of ACCOUNT_EVENT_KINDS
SIGNUP, STEP_UP = range(2)  # codes of VERIFICATION_REASONS
# the online shops a new account spends small amounts at while it earns trust
EVERYDAY_ONLINE = np.array([category_index(n) for n in (
    "digital_goods", "food_delivery", "ride_hailing", "streaming", "marketplace")])
