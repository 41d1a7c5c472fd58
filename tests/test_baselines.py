import torch

from owsd.baselines import classifier_head_accuracy, linear_probe_accuracy


def clusters(seed: int, classes: int = 8, per_class: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, 16, generator=torch.Generator().manual_seed(99)) * 3
    return centres[labels] + torch.randn(len(labels), 16, generator=generator), labels


def test_the_linear_probe_reads_labels_that_are_linear_in_the_embedding():
    (train_x, train_y), (test_x, test_y) = clusters(0), clusters(1)
    scores = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    assert scores["top1"] > 0.95 and scores["top5"] >= scores["top1"]


def test_the_linear_probe_is_at_chance_on_unrelated_labels_and_caps_top5_at_the_classes():
    (train_x, train_y), (test_x, test_y) = clusters(0), clusters(1)
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(2))]
    assert linear_probe_accuracy(train_x, shuffled, test_x, test_y)["top1"] < 0.3  # chance: 1/8
    two = (train_y < 2), (test_y < 2)
    assert linear_probe_accuracy(train_x[two[0]], train_y[two[0]], test_x[two[1]], test_y[two[1]])["top5"] == 1.0


def test_the_classifier_head_ranks_only_the_chosen_classes():
    head = torch.nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(6))
    embeddings = torch.eye(6)[[1, 3, 5]] + torch.eye(6)[[0, 0, 0]] * 2  # class 0 wins unless it is excluded
    chosen = [1, 3, 5]  # IIN class i is head class chosen[i]
    assert classifier_head_accuracy(head, embeddings, torch.tensor([0, 1, 2]), chosen)["top1"] == 1.0
    assert classifier_head_accuracy(head, embeddings, torch.tensor([0, 1, 2]), [0, 1, 3])["top1"] == 1 / 3  # all say 0
    assert classifier_head_accuracy(head, embeddings, torch.tensor([2, 2, 0]), chosen) == {"top1": 0.0, "top5": 1.0}
