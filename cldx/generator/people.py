"""Who the clients are: names, ethnicity, iwi, gender and where they live, by region and service.

Shares are plausible rather than official: Māori and Pacific shares follow each region's
population roughly and are higher among clients of social services, as they are in New
Zealand. Names carry macrons, hyphens and apostrophes so every later part meets them.
"""

from __future__ import annotations

import numpy as np

# Ethnicity pools (level-2 ETHNIC05 codes) and the names drawn for each.
POOLS = ("maori", "pacific", "european", "asian", "melaa")
POOL_CODES: dict[str, tuple[tuple[str, float], ...]] = {
    "maori": (("21", 1.0),),
    "pacific": (("31", 0.45), ("33", 0.2), ("32", 0.18), ("34", 0.07), ("36", 0.05), ("35", 0.02), ("37", 0.03)),
    "european": (("11", 0.86), ("12", 0.12), ("10", 0.02)),
    "asian": (("43", 0.38), ("42", 0.32), ("41", 0.17), ("44", 0.13)),
    "melaa": (("51", 0.5), ("53", 0.3), ("52", 0.2)),
}
FAMILY_NAMES: dict[str, tuple[str, ...]] = {
    "maori": ("Ngata", "Te Rangi", "Waaka", "Hēnare", "Parata", "Tamihana", "Rāwiri", "Te Awa", "Karaka", "Wihongi", "Paewai",
              "Tūroa", "Kīngi", "Horomona", "Rēweti", "Tīpene", "Mātene", "Hōhaia", "Pōmare", "Ruatapu", "Tautahi", "Te Whata",
              "Walker", "Tūhiwai", "Ngāwhika", "Māhutonga"),
    "pacific": ("Tuilagi", "Fa'afoi", "Leota", "Tupou", "Fonoti", "Taufa", "Vaifale", "Pouono", "Sopoaga", "Taumalolo", "Fifita",
                "Faleafa", "Mata'afa", "Tu'ipulotu", "Aumua", "Tanielu", "Fuimaono", "Lealaiauloto", "Tamapua", "Nga'a"),
    "european": ("Smith", "Wilson", "Brown", "Taylor", "Anderson", "Thomson", "Williams", "Harris", "Martin", "O'Connor", "McDonald",
                 "Robertson", "Campbell", "Stewart", "Clarke", "Young", "Mitchell", "Scott", "Davies", "O'Brien", "Murphy", "Kelly",
                 "Fraser", "Hughes", "van der Berg", "D'Arcy", "Müller", "Søndergaard"),
    "asian": ("Wang", "Li", "Zhang", "Chen", "Singh", "Patel", "Kumar", "Kim", "Nguyễn", "Tran", "Reddy", "Sharma", "Lee",
              "Wong", "Huang", "Liu", "Santos", "Reyes"),
    "melaa": ("Hassan", "Ahmed", "Mohamed", "García", "Rodríguez", "Haddad", "Ali", "Abdi", "Osei", "Mensah"),
}
GIVEN_NAMES: dict[str, tuple[str, ...]] = {
    "maori": ("Aroha", "Mere", "Hēmi", "Tama", "Wiremu", "Ngaio", "Kahurangi", "Tāne", "Anahera", "Rāwiri", "Mānaia",
              "Hinewai", "Ātaahua", "Nikau", "Kauri", "Tūī", "Rangi", "Whetū", "Moana", "Ihaia", "Te Ao", "Māia"),
    "pacific": ("Sione", "Losa", "Mele", "Tevita", "Salote", "Ioane", "Malia", "Vili", "Fetu", "Talia", "Lupe", "Pita", "Sina",
                "Siaosi", "Ana", "Lagi"),
    "european": ("Jack", "Oliver", "Charlotte", "Olivia", "James", "William", "Sophie", "Emily", "Liam", "Ruby", "Isla", "Noah",
                 "Mia", "Hannah", "Thomas", "Jessica", "Daniel", "Chloé", "Zoë", "Renée", "Mary-Jane", "Jean-Luc", "Seán", "Amélie"),
    "asian": ("Wei", "Jun", "Priya", "Arjun", "Min-jun", "Ji-woo", "Mei", "Hao", "Anh", "Linh", "Raj", "Aarav", "Ananya", "Jia Hui"),
    "melaa": ("Omar", "Fatima", "Yusuf", "Amina", "Sofía", "Mateo", "Layla", "Kwame"),
}

# Māori and Pacific shares of each region's population (about the 2018 Census), before the
# over-representation among social-service clients is applied.
REGION_SHARES: dict[str, tuple[float, float, float]] = {  # maori, pacific, asian
    "01": (0.36, 0.04, 0.04), "02": (0.12, 0.16, 0.28), "03": (0.23, 0.05, 0.09), "04": (0.30, 0.04, 0.07),
    "05": (0.53, 0.05, 0.03), "06": (0.27, 0.05, 0.05), "07": (0.19, 0.03, 0.05), "08": (0.24, 0.05, 0.07),
    "09": (0.14, 0.08, 0.13), "12": (0.13, 0.02, 0.04), "13": (0.10, 0.03, 0.11), "14": (0.09, 0.02, 0.08),
    "15": (0.15, 0.02, 0.06), "16": (0.09, 0.01, 0.03), "17": (0.11, 0.02, 0.06), "18": (0.13, 0.02, 0.05),
}
# Iwi regions (level-1 iwi codes) near each regional council: clients mostly affiliate locally.
LOCAL_IWI_REGIONS: dict[str, tuple[str, ...]] = {
    "01": ("01",), "02": ("01", "02"), "03": ("03", "02"), "04": ("04", "05"), "05": ("06",), "06": ("07",), "07": ("08",),
    "08": ("09", "10"), "09": ("10", "07"), "12": ("11",), "13": ("11",), "14": ("11",), "15": ("11",), "16": ("11",),
    "17": ("11",), "18": ("11",),
}


def ethnic_pool_probabilities(region: str, service_group: str) -> np.ndarray:
    """Probabilities over POOLS for clients of a service group in a region."""
    maori, pacific, asian = REGION_SHARES.get(region, (0.15, 0.07, 0.12))
    # Clients of these services are more often Māori and Pacific than the population; adults
    # in financial and family-violence services somewhat less so than families with infants.
    lift = {"parent": (2.2, 1.6), "child": (2.0, 1.6), "youth": (1.9, 1.5), "adult": (1.6, 1.3)}[service_group]
    weights = np.array([maori * lift[0], pacific * lift[1], 0.0, asian * 0.5, 0.015])
    weights[2] = max(1.0 - weights.sum(), 0.15)
    return weights / weights.sum()


def choose_names(pool_index: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Family and given names for people of the given pools (object arrays of str)."""
    family = np.empty(len(pool_index), dtype=object)
    given = np.empty(len(pool_index), dtype=object)
    for k, pool in enumerate(POOLS):
        where = np.flatnonzero(pool_index == k)
        if not len(where):
            continue
        fam_list = np.array(FAMILY_NAMES[pool], dtype=object)
        giv_list = np.array(GIVEN_NAMES[pool], dtype=object)
        family[where] = fam_list[rng.integers(len(fam_list), size=len(where))]
        given[where] = giv_list[rng.integers(len(giv_list), size=len(where))]
        # Some people carry a second given name, some a double-barrelled family name.
        second = where[rng.random(len(where)) < 0.35]
        given[second] = given[second] + " " + giv_list[rng.integers(len(giv_list), size=len(second))]
    hyphen = np.flatnonzero(rng.random(len(pool_index)) < 0.05)
    all_family = np.array([n for pool in POOLS for n in FAMILY_NAMES[pool]], dtype=object)
    family[hyphen] = family[hyphen] + "-" + all_family[rng.integers(len(all_family), size=len(hyphen))]
    return family, given
